package crypto_test

import (
	"testing"

	"smartmeters/crypto"
)

func BenchmarkVerify(b *testing.B) {
	for _, c := range signedCases {
		b.Run(c.name, func(b *testing.B) {
			pub := testKey(b, c.typ, 0).Public()
			sig := signCase(b, c, 0, vectorReading)
			b.ReportAllocs()
			for b.Loop() {
				if err := pub.Verify(vectorReading, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifyMismatch(b *testing.B) {
	for _, c := range signedCases {
		b.Run(c.name, func(b *testing.B) {
			pub := testKey(b, c.typ, 0).Public()
			sig := signCase(b, c, 0, vectorReading)
			other := vectorReading
			other.WhIn++
			b.ReportAllocs()
			for b.Loop() {
				if err := pub.Verify(other, sig); err == nil {
					b.Fatal("Verify accepted a changed reading")
				}
			}
		})
	}
}

func BenchmarkDecodePublicKey(b *testing.B) {
	for _, typ := range crypto.KeyTypes {
		der := testKey(b, typ, 0).Public().DER()
		encodings := []struct{ name, in string }{
			{"Base64", b64(der)},
			{"PEM", string(pemBlock("PUBLIC KEY", der))},
		}
		for _, enc := range encodings {
			b.Run(string(typ)+"/"+enc.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					der, err := crypto.DecodePublicKey(enc.in)
					if err != nil {
						b.Fatal(err)
					}
					_ = crypto.FingerprintOf(der)
				}
			})
		}
	}
}

func BenchmarkParsePublicKey(b *testing.B) {
	for _, typ := range crypto.KeyTypes {
		in := testKey(b, typ, 0).Public().Base64()
		b.Run(string(typ), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := crypto.ParsePublicKey(in, 2048); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
