package store_test

import (
	"context"
	"errors"
	"testing"

	"smartmeters/store"
)

func testPing(t *testing.T, st *store.Store) {
	t.Run("OK", func(t *testing.T) {
		if err := st.Ping(context.Background()); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
	t.Run("Canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := st.Ping(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Ping(canceled context) = %v, want context.Canceled", err)
		}
	})
}
