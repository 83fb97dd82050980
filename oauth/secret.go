package oauth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
)

// secretHash is a client secret's PBKDF2-HMAC-SHA256 hash, in the text
// form route.Password uses for user passwords
// (pbkdf2-sha256$ITERATIONS$KEYLEN$SALT$KEY, the salt used as a string and
// the key base64-encoded), so that `edgewamp passwd` hashes client secrets
// too. oauth imports nothing internal, hence this small twin of the parser.
type secretHash struct {
	iterations int
	keyLen     int
	salt       string
	key        []byte
}

const hashPrefix = "pbkdf2-sha256$"

func parseSecretHash(s string) (*secretHash, error) {
	if !strings.HasPrefix(s, hashPrefix) {
		return nil, errors.New("hash must start with " + hashPrefix + " (make one with `edgewamp passwd` or `edgewamp oauth secret`)")
	}
	f := strings.Split(strings.TrimPrefix(s, hashPrefix), "$")
	if len(f) != 4 {
		return nil, errors.New("hash must be pbkdf2-sha256$ITERATIONS$KEYLEN$SALT$KEY")
	}
	it, err1 := strconv.Atoi(f[0])
	kl, err2 := strconv.Atoi(f[1])
	key, err3 := base64.StdEncoding.DecodeString(f[3])
	if err1 != nil || err2 != nil || err3 != nil || it < 1 || kl < 16 || kl > 64 || len(key) != kl || f[2] == "" {
		return nil, errors.New("malformed hash")
	}
	return &secretHash{iterations: it, keyLen: kl, salt: f[2], key: key}, nil
}

// verify checks a secret in constant time (for a given hash). It costs the
// hash's PBKDF2 iterations.
func (h *secretHash) verify(secret string) bool {
	k, err := pbkdf2.Key(sha256.New, secret, []byte(h.salt), h.iterations, h.keyLen)
	return err == nil && subtle.ConstantTimeCompare(k, h.key) == 1
}

// HashSecret hashes a client secret (or a password) for the configuration,
// with a random salt and the given PBKDF2 iterations (<= 0: 100,000).
func HashSecret(secret string, iterations int) (string, error) {
	if iterations <= 0 {
		iterations = 100000
	}
	var salt [16]byte
	rand.Read(salt[:])
	s := base64.RawStdEncoding.EncodeToString(salt[:])
	k, err := pbkdf2.Key(sha256.New, secret, []byte(s), iterations, 32)
	if err != nil {
		return "", err
	}
	return hashPrefix + strconv.Itoa(iterations) + "$32$" + s + "$" + base64.StdEncoding.EncodeToString(k), nil
}

// NewClientSecret returns a random 256-bit client secret (base64url).
func NewClientSecret() string { return randomToken(32) }

// secretCache remembers client secrets that verified, so that a client
// that authenticates often (client_credentials from every device) costs
// one SHA-256 instead of a PBKDF2 after the first time. It holds
// SHA-256(client ID, hash, secret) only, for at most ttl, bounded in size;
// a failed verification is never cached. Safe for concurrent use.
type secretCache struct {
	mu  sync.Mutex
	m   map[[32]byte]time.Time // guarded by mu
	max int
	ttl time.Duration
}

func newSecretCache() *secretCache {
	return &secretCache{m: map[[32]byte]time.Time{}, max: 4096, ttl: 10 * time.Minute}
}

func secretKey(c *clientConf, secret string) [32]byte {
	h := sha256.New()
	h.Write([]byte(c.ID))
	h.Write([]byte{0})
	h.Write(c.secret.key) // a changed hash (new secret) misses
	h.Write([]byte{0})
	h.Write([]byte(secret))
	var k [32]byte
	h.Sum(k[:0])
	return k
}

func (sc *secretCache) hit(k [32]byte, now time.Time) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	exp, ok := sc.m[k]
	if ok && now.After(exp) {
		delete(sc.m, k)
		return false
	}
	return ok
}

func (sc *secretCache) add(k [32]byte, now time.Time) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.m) >= sc.max {
		for k := range sc.m { // random eviction: map order
			delete(sc.m, k)
			if len(sc.m) < sc.max*3/4 {
				break
			}
		}
	}
	sc.m[k] = now.Add(sc.ttl)
}

// randomToken returns n random bytes, base64url without padding.
func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashHex returns the hex SHA-256 of s: the store key of a secret value
// (device and authorization codes), never the value itself.
func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	const hexd = "0123456789abcdef"
	out := make([]byte, 64)
	for i, b := range h {
		out[2*i], out[2*i+1] = hexd[b>>4], hexd[b&15]
	}
	return string(out)
}
