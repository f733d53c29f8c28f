package ingest

import "testing"

func TestDuplicateKey(t *testing.T) {
	for _, tt := range []struct {
		body, key string
		dup       bool
	}{
		{`{"a":1,"b":2}`, "", false},
		{`{"a":1,"a":2}`, "a", true},
		{`{"whIn":1,"WHIN":2}`, "WHIN", true},
		{`{"a":{"x":1},"b":{"x":1}}`, "", false},
		{`{"a":{"x":1,"x":2}}`, "x", true},
		{`{"a":[{"x":1},{"x":2}],"b":1}`, "", false},
		{`[{"a":1},{"a":1,"b":2,"a":3}]`, "a", true},
		{`{"a":"\"a\"","b":"a"}`, "", false},
		{`{"a":1,"\u0061":2}`, "a", true},
		{`{"a":["a","a"]}`, "", false},
		{`{"k":{"a":1},"a":2}`, "", false},
		{` { "a" : 1 , "a" : 2 } `, "a", true},
	} {
		key, dup := duplicateKey([]byte(tt.body))
		if key != tt.key || dup != tt.dup {
			t.Errorf("duplicateKey(%s) = %q, %v; want %q, %v", tt.body, key, dup, tt.key, tt.dup)
		}
	}
}

// BenchmarkDuplicateKey measures the duplicate-key scan of a report body,
// the cost it adds to every report's decoding.
func BenchmarkDuplicateKey(b *testing.B) {
	body := []byte(`{"base64PublicKey":"MCowBQYDK2VwAyEArVYZ1T/lVNOuvB2gTOjg/mWJhZxZzIEDK2/jTPInjVM=","base64Signature":"HJ8kADjDSEsDnAO1FXcblSs/LwpabDffJ1NNlPXoi58XCarFjTcYDBjIpwWDNKVu1r9A3Px0RxjOTUTnMNVgAQ==","reading":{"whIn":1234567,"whOut":8910,"timestamp":1764141243123}}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, dup := duplicateKey(body); dup {
			b.Fatal("duplicate")
		}
	}
}
