package ingest

import (
	"bytes"
	"encoding/json"
)

// duplicateKey returns the first object key that appears twice in one
// object of body, which must be valid JSON, and whether there is one.
// encoding/json would silently keep the last of two values, and matches
// keys to fields without regard to case, so "whIn" and "WHIN" are
// duplicates too; a signed report must not have two readings of a field.
//
// It scans the bytes once without decoding values, and allocates only for
// a key that holds an escape; a report's objects have a handful of keys,
// so keys are compared linearly.
func duplicateKey(body []byte) (string, bool) {
	var (
		keyBuf   [16][]byte
		startBuf [8]int
		keys     = keyBuf[:0]   // the keys of the open objects, innermost last
		starts   = startBuf[:0] // where each open object's keys start in keys; -1 for an array
		expect   bool           // the next string is a key
	)
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			starts = append(starts, len(keys))
			expect = true
		case '[':
			starts = append(starts, -1)
			expect = false
		case '}', ']':
			if n := len(starts); n > 0 {
				if s := starts[n-1]; s >= 0 {
					keys = keys[:s]
				}
				starts = starts[:n-1]
			}
			expect = false
		case ',':
			expect = len(starts) > 0 && starts[len(starts)-1] >= 0
		case '"':
			end, escaped := stringEnd(body, i)
			if expect {
				key := body[i+1 : end]
				if escaped {
					var s string
					if json.Unmarshal(body[i:end+1], &s) == nil {
						key = []byte(s)
					}
				}
				for _, k := range keys[starts[len(starts)-1]:] {
					if bytes.EqualFold(k, key) {
						return string(key), true
					}
				}
				keys = append(keys, key)
				expect = false
			}
			i = end
		}
	}
	return "", false
}

// stringEnd returns the index of the quote that closes the JSON string
// opening at body[start], and whether the string holds a backslash escape.
func stringEnd(body []byte, start int) (end int, escaped bool) {
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return len(body) - 1, escaped
}
