package store_test

import (
	"bytes"
	"context"
	"testing"

	"smartmeters/store"
)

func testEnsureServerKey(t *testing.T, st *store.Store) {
	ctx := context.Background()
	first, err := st.EnsureServerKey(ctx, "test", []byte("first"), registeredAt)
	if err != nil || !bytes.Equal(first, []byte("first")) {
		t.Fatalf("EnsureServerKey on an empty store = %q, %v; want the key given", first, err)
	}
	second, err := st.EnsureServerKey(ctx, "test", []byte("second"), registeredAt)
	if err != nil || !bytes.Equal(second, []byte("first")) {
		t.Fatalf("EnsureServerKey again = %q, %v; want the key stored first", second, err)
	}
	other, err := st.EnsureServerKey(ctx, "other", []byte("other"), registeredAt)
	if err != nil || !bytes.Equal(other, []byte("other")) {
		t.Fatalf("EnsureServerKey of another name = %q, %v", other, err)
	}
}
