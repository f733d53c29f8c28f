package crypto_test

import (
	"bytes"
	"errors"
	"fmt"

	"smartmeters/crypto"
)

func ExampleReading_Message() {
	r := crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}
	msg := r.Message()
	fmt.Printf("%s %x %x %x\n", msg[0:4], msg[4:12], msg[12:20], msg[20:28])
	// Output:
	// SMR1 000000000012d687 00000000000022ce 0000019abf031af3
}

func ExamplePrivateKey_Sign() {
	// The meter: a key from a fixed seed, so this example's output is stable.
	meterKey, err := crypto.GenerateKey(crypto.Ed25519, bytes.NewReader(make([]byte, 32)))
	if err != nil {
		panic(err)
	}
	r := crypto.Reading{WhIn: 1234567, WhOut: 8910, Timestamp: 1764141243123}
	sig, err := meterKey.Sign(r)
	if err != nil {
		panic(err)
	}

	// The server: parse the registered key once, verify every reading.
	pub, err := crypto.ParsePublicKey(meterKey.Public().Base64(), 2048)
	if err != nil {
		panic(err)
	}
	fmt.Println(pub.Algorithm(), pub.Fingerprint())
	fmt.Println(pub.Verify(r, sig))

	r.WhIn++
	err = pub.Verify(r, sig)
	fmt.Println(errors.Is(err, crypto.ErrBadSignature), err)
	// Output:
	// ed25519 339e2ff917630507b6a423b5ce084e285d1fa65d93b3e27a6195d3bbebc9ae23
	// <nil>
	// true bad signature: Ed25519 signature does not match the reading
}
