package oauth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// The key ring: the keys that sign access tokens and the public keys that
// verify them (published as the JWKS). With Options.SigningKeys the ring is
// static. Otherwise it is generated and kept in the store under keys.ring,
// shared by every node of a mesh, and rotated: a new key is written to the
// ring publishAhead plus the allowed clock skew before it starts signing
// (so that every node, whatever its clock, and every verifier that
// refreshes the JWKS, knows it before the first token it signs), and a key that stopped signing stays until every token it signed
// has expired.

// sigKey is one key of the ring. Immutable.
type sigKey struct {
	kid        string
	alg        jwa.SignatureAlgorithm
	priv       jwk.Key   // nil: verify only
	pub        any       // ed25519.PublicKey or *ecdsa.PublicKey
	pubJWK     jwk.Key   // published in the JWKS
	activeFrom time.Time // signs from then on (until a newer key is active)
}

// keyRing is an immutable snapshot, swapped atomically.
type keyRing struct {
	keys   []*sigKey // by activeFrom, oldest first
	byKid  map[string]*sigKey
	jwks   []byte // the JWKS document
	rev    uint64 // store revision of keys.ring (generated rings)
	static bool
}

// signer returns the key that signs at now: the newest active one.
func (kr *keyRing) signer(now time.Time) *sigKey {
	for i := len(kr.keys) - 1; i >= 0; i-- {
		if k := kr.keys[i]; k.priv != nil && !k.activeFrom.After(now) {
			return k
		}
	}
	return nil
}

// ringRecord is keys.ring in the store.
type ringRecord struct {
	Keys []keyRecord `json:"keys"`
}

type keyRecord struct {
	Kid        string          `json:"kid"`
	Alg        string          `json:"alg"`
	JWK        json.RawMessage `json:"jwk"` // the private key
	Created    int64           `json:"created"`
	ActiveFrom int64           `json:"active_from"`
}

const ringKey = "keys.ring"

// newSigKey wraps a private key.
func newSigKey(priv crypto.Signer, activeFrom time.Time) (*sigKey, error) {
	var alg jwa.SignatureAlgorithm
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		alg = jwa.EdDSA
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("oauth: an ECDSA signing key must be on P-256 (ES256)")
		}
		alg = jwa.ES256
	default:
		return nil, fmt.Errorf("oauth: signing keys are Ed25519 or ECDSA P-256, not %T", priv)
	}
	jk, err := jwk.FromRaw(priv)
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	if err := jwk.AssignKeyID(jk); err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	jk.Set(jwk.AlgorithmKey, alg)
	pub, err := jk.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	pub.Set(jwk.KeyUsageKey, jwk.ForSignature)
	return &sigKey{kid: jk.KeyID(), alg: alg, priv: jk, pub: priv.Public(), pubJWK: pub, activeFrom: activeFrom}, nil
}

// generateKey makes a new private key for alg.
func generateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "EdDSA":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	case "ES256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	return nil, fmt.Errorf("oauth: algorithm %q: want EdDSA or ES256", alg)
}

// newRing builds a snapshot from keys (any order).
func newRing(keys []*sigKey, rev uint64, static bool) (*keyRing, error) {
	slices.SortStableFunc(keys, func(a, b *sigKey) int { return a.activeFrom.Compare(b.activeFrom) })
	kr := &keyRing{keys: keys, byKid: map[string]*sigKey{}, rev: rev, static: static}
	set := jwk.NewSet()
	for _, k := range keys {
		if kr.byKid[k.kid] != nil {
			return nil, fmt.Errorf("oauth: key %s is in the ring twice", k.kid)
		}
		kr.byKid[k.kid] = k
		set.AddKey(k.pubJWK)
	}
	b, err := json.Marshal(set)
	if err != nil {
		return nil, err
	}
	kr.jwks = b
	return kr, nil
}

// staticRing is the ring of Options.SigningKeys.
func staticRing(signers []crypto.Signer) (*keyRing, error) {
	var keys []*sigKey
	for i, s := range signers {
		// The first key signs; the others are older keys that only verify.
		k, err := newSigKey(s, time.Time{})
		if err != nil {
			return nil, fmt.Errorf("signing key %d: %w", i+1, err)
		}
		if i > 0 {
			k.priv = nil
		}
		keys = append(keys, k)
	}
	return newRing(keys, 0, true)
}

// decodeRing parses keys.ring.
func decodeRing(e Entry) (*keyRing, *ringRecord, error) {
	var rec ringRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return nil, nil, fmt.Errorf("oauth: %s: %w", ringKey, err)
	}
	if len(rec.Keys) == 0 {
		// Damaged ("null", "{}"), not a ring to replace with a new key:
		// that would invalidate every outstanding token on every node.
		return nil, nil, fmt.Errorf("oauth: %s holds no keys", ringKey)
	}
	var keys []*sigKey
	for _, kr := range rec.Keys {
		jk, err := jwk.ParseKey(kr.JWK)
		if err != nil {
			return nil, nil, fmt.Errorf("oauth: %s: key %s: %w", ringKey, kr.Kid, err)
		}
		var raw any
		if err := jk.Raw(&raw); err != nil {
			return nil, nil, fmt.Errorf("oauth: %s: key %s: %w", ringKey, kr.Kid, err)
		}
		signer, ok := raw.(crypto.Signer)
		if !ok {
			if p, isPtr := raw.(*ed25519.PrivateKey); isPtr {
				signer = *p
			} else {
				return nil, nil, fmt.Errorf("oauth: %s: key %s is not a private key", ringKey, kr.Kid)
			}
		}
		k, err := newSigKey(signer, time.Unix(kr.ActiveFrom, 0))
		if err != nil {
			return nil, nil, err
		}
		if k.kid != kr.Kid {
			return nil, nil, fmt.Errorf("oauth: %s: key %s has thumbprint %s", ringKey, kr.Kid, k.kid)
		}
		keys = append(keys, k)
	}
	ring, err := newRing(keys, e.Revision, false)
	return ring, &rec, err
}

func newKeyRecord(alg string, now, activeFrom time.Time) (keyRecord, error) {
	priv, err := generateKey(alg)
	if err != nil {
		return keyRecord{}, err
	}
	k, err := newSigKey(priv, activeFrom)
	if err != nil {
		return keyRecord{}, err
	}
	b, err := json.Marshal(k.priv)
	if err != nil {
		return keyRecord{}, err
	}
	return keyRecord{Kid: k.kid, Alg: string(k.alg), JWK: b, Created: now.Unix(), ActiveFrom: activeFrom.Unix()}, nil
}

// maintainRing loads keys.ring, creating it on first start, rotates it when
// the signing key is due (or of another algorithm than configured), and
// drops keys whose tokens have all expired. Concurrent nodes race through
// CAS: the loser re-reads. It returns the current ring.
func (s *Server) maintainRing(ctx context.Context) (*keyRing, error) {
	for attempt := 0; attempt < 5; attempt++ {
		now := s.now()
		e, err := s.store.Get(ctx, ringKey)
		if errors.Is(err, ErrNotFound) {
			// The first key signs at once, on every node: from the skew
			// before this clock, so that a node whose clock is behind
			// this one's is not left without an active key (every token
			// request there failed until its clock caught up).
			kr, err := newKeyRecord(s.alg, now, now.Add(-s.skew))
			if err != nil {
				return nil, err
			}
			b, _ := json.Marshal(ringRecord{Keys: []keyRecord{kr}})
			if _, err := s.store.Create(ctx, ringKey, b, 0); err != nil && !errors.Is(err, ErrExists) {
				return nil, err
			} else if err == nil {
				s.log.Info("oauth: generated a signing key", "kid", kr.Kid, "alg", kr.Alg)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		ring, rec, err := decodeRing(e)
		if err != nil {
			return nil, err
		}
		next, changed, err := s.planRing(rec, now)
		if err != nil {
			return nil, err
		}
		if !changed {
			return ring, nil
		}
		b, _ := json.Marshal(next)
		if _, err := s.store.Update(ctx, ringKey, b, e.Revision, 0); err != nil && !errors.Is(err, ErrRevision) && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	return nil, errors.New("oauth: the key ring keeps changing under us")
}

// planRing decides rotation and pruning. Keys are ordered by activeFrom.
func (s *Server) planRing(rec *ringRecord, now time.Time) (*ringRecord, bool, error) {
	keys := slices.Clone(rec.Keys)
	slices.SortStableFunc(keys, func(a, b keyRecord) int { return cmp.Compare(a.ActiveFrom, b.ActiveFrom) })
	changed := false
	// Drop a key once the next one has been signing for longer than any
	// token lives (plus skew): nothing it signed can still be valid. A
	// token lives as long as the configuration that issued it said: the
	// longer lifetime of a configuration a reload replaced counts until
	// the tokens it issued have expired (oldUntil, plus the same margin),
	// as for revocations (tokenTTL).
	cfg := s.cfg.Load()
	ttl := cfg.maxTTL
	if now.Before(cfg.oldUntil.Add(s.skew + time.Minute)) {
		ttl = max(ttl, cfg.oldTTL)
	}
	keep := ttl + s.skew + time.Minute
	for len(keys) > 1 && now.Sub(time.Unix(keys[1].ActiveFrom, 0)) > keep {
		s.log.Info("oauth: dropped a retired signing key", "kid", keys[0].Kid)
		keys, changed = keys[1:], true
	}
	var signer *keyRecord
	pending := false
	for i := range keys {
		if time.Unix(keys[i].ActiveFrom, 0).After(now) {
			pending = true
		} else {
			signer = &keys[i]
		}
	}
	due := signer == nil || now.Sub(time.Unix(signer.ActiveFrom, 0)) >= s.rotateEvery || signer.Alg != s.alg
	if due && !pending {
		// The key signs once every node has read it: publishAhead (two
		// syncs) after it is written, by the clock of the node that
		// signs, which may be up to the skew ahead of this one's. Before,
		// a writer whose clock was behind by more than a sync interval
		// published a key already active elsewhere, whose tokens the
		// nodes that had not synced yet refused as forged.
		from := now.Add(s.publishAhead + s.skew)
		if signer == nil {
			from = now.Add(-s.skew) // nothing signs: at once, on every clock
		}
		kr, err := newKeyRecord(s.alg, now, from)
		if err != nil {
			return nil, false, err
		}
		s.log.Info("oauth: rotating the signing key", "new_kid", kr.Kid, "alg", kr.Alg, "signs_from", time.Unix(kr.ActiveFrom, 0).UTC())
		keys, changed = append(keys, kr), true
	}
	return &ringRecord{Keys: keys}, changed, nil
}

// ParsePrivateKeyPEM reads a signing key: PKCS#8 "PRIVATE KEY" (Ed25519 or
// ECDSA P-256) or SEC 1 "EC PRIVATE KEY" (P-256).
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("oauth: no PEM block found")
	}
	var k any
	var err error
	switch b.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("oauth: PEM block %q: want PRIVATE KEY or EC PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("oauth: %T is not a signing key", k)
	}
	if _, err := newSigKey(s, time.Time{}); err != nil {
		return nil, err
	}
	return s, nil
}

// GenerateKeyPEM makes a new signing key for alg ("EdDSA" or "ES256") as
// PKCS#8 PEM, for a key file.
func GenerateKeyPEM(alg string) ([]byte, error) {
	k, err := generateKey(alg)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
