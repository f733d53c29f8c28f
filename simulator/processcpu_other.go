//go:build !unix

package simulator

// processCPU is not measured here: VerifyCeiling falls back to wall time.
func processCPU() float64 { return 0 }
