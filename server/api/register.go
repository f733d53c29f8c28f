package api

// PathRegister is the admin listener's registration route.
const PathRegister = "/register"

// RegisterRequest is the body of POST /register.
type RegisterRequest struct {
	Username        string `json:"username"`
	Base64PublicKey string `json:"base64PublicKey"`
}

// RegisterResponse is the answer to a registration: 201 with the meter's
// id and its key's fingerprint.
type RegisterResponse struct {
	ID          int64  `json:"id"`
	Username    string `json:"username"`
	Algorithm   string `json:"algorithm"`
	Fingerprint string `json:"fingerprint"`
}
