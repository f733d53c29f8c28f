package simulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"

	"smartmeters/crypto"
	"smartmeters/server/api"
)

// maxRenames bounds how often a meter picks a new username because its
// name is taken, as happens when a seed is reused against one server.
const maxRenames = 8

// fleet returns the identities of the meters: the first Meters of the keys
// file if it exists, or new ones, generated, registered and, if a keys file
// is named, saved to it. registered is the number of meters registered.
//
// A new keys file is created (as a temporary file) before anything is
// registered: a private key that cannot be saved is lost, and its meter,
// whose public key can never be registered again, with it.
func (s *Simulator) fleet(ctx context.Context) (ids []MeterKey, registered int, err error) {
	var keys *pendingKeyFile
	if s.cfg.KeysFile != "" {
		ids, err := LoadKeyFile(s.cfg.KeysFile)
		switch {
		case err == nil:
			if len(ids) < s.cfg.Meters {
				return nil, 0, fmt.Errorf("keys file %s holds %d meters, fewer than the %d asked for",
					s.cfg.KeysFile, len(ids), s.cfg.Meters)
			}
			ids = ids[:s.cfg.Meters]
			s.st.generated.Store(int64(len(ids)))
			s.st.registered.Store(int64(len(ids)))
			return ids, 0, nil
		case !errors.Is(err, ErrNoKeyFile):
			return nil, 0, err
		}
		if keys, err = createKeyFile(s.cfg.KeysFile); err != nil {
			return nil, 0, fmt.Errorf("%w; no meter was registered", err)
		}
	}
	ids, err = s.generateAndRegister(ctx)
	if err != nil {
		if keys != nil {
			keys.discard()
		}
		return nil, 0, err
	}
	if keys != nil {
		if err := keys.save(ids); err != nil {
			return nil, 0, fmt.Errorf("%d meters registered but not saved: %w", len(ids), err)
		}
	}
	return ids, len(ids), nil
}

// generateAndRegister generates Meters keys on every CPU and registers each
// meter as soon as its key is ready, with at most Concurrency registrations
// in flight. The first failure stops the rest.
func (s *Simulator) generateAndRegister(ctx context.Context) ([]MeterKey, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	names := newUsernames(s.cfg.Seed)
	ids := make([]MeterKey, s.cfg.Meters)
	for i := range ids {
		ids[i].Username = names.next()
	}
	var namesMu sync.Mutex
	rename := func() string {
		namesMu.Lock()
		defer namesMu.Unlock()
		return names.next()
	}

	todo := make(chan int)
	ready := make(chan int, s.cfg.Concurrency)
	var gen, reg sync.WaitGroup
	for range runtime.NumCPU() {
		gen.Go(func() {
			for i := range todo {
				k, err := crypto.GenerateKey(s.cfg.KeyType, nil)
				if err != nil {
					cancel(fmt.Errorf("generate key: %w", err))
					return
				}
				ids[i].Key = k
				s.st.generated.Add(1)
				ready <- i
			}
		})
	}
	for range min(s.cfg.Concurrency, s.cfg.Meters) {
		reg.Go(func() {
			for i := range ready {
				if ctx.Err() != nil {
					continue
				}
				if err := s.register(ctx, &ids[i], rename); err != nil {
					cancel(err)
					continue
				}
				s.st.registered.Add(1)
			}
		})
	}
feed:
	for i := range ids {
		select {
		case todo <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(todo)
	gen.Wait()
	close(ready)
	reg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	return ids, nil
}

// register registers m on the admin listener. When its username is taken,
// it takes another from rename and tries again.
//
// Registering is not idempotent, so a retry whose earlier attempt was
// stored but whose answer was lost is told "taken". The key is fresh, so a
// key-taken answer after a retry means that attempt succeeded; it was made
// under the username lostAs, which may since have been renamed away from
// because, being ours, it was taken.
func (s *Simulator) register(ctx context.Context, m *MeterKey, rename func() string) error {
	pub := m.Key.Public()
	lostAs := ""
	for renames := 0; ; renames++ {
		body, err := json.Marshal(api.RegisterRequest{Username: m.Username, Base64PublicKey: pub.Base64()})
		if err != nil {
			return fmt.Errorf("register %s: %w", m.Username, err)
		}
		rep, retries, err := s.client.send(ctx, ctx, s.registerURL, body)
		if err != nil {
			return fmt.Errorf("register %s at %s: %w", m.Username, s.registerURL, err)
		}
		if retries > 0 {
			lostAs = m.Username
		}
		switch {
		case rep.status == http.StatusCreated:
			var got api.RegisterResponse
			if err := json.Unmarshal(rep.body, &got); err != nil {
				return fmt.Errorf("register %s: answer is not JSON: %w", m.Username, err)
			}
			if want := pub.Fingerprint().String(); got.Fingerprint != want {
				return fmt.Errorf("register %s: server reports fingerprint %q, want %s", m.Username, got.Fingerprint, want)
			}
			return nil
		case rep.slug == api.KeyTaken.Slug && lostAs != "":
			m.Username = lostAs
			return nil
		case rep.slug == api.UsernameTaken.Slug && renames < maxRenames:
			m.Username = rename()
			continue
		}
		return fmt.Errorf("register %s at %s: %s", m.Username, s.registerURL, rep)
	}
}
