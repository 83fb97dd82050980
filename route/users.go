package route

import (
	"cmp"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// User is a principal of a realm's static user store (from the
// configuration file).
type User struct {
	AuthID string
	// Roles the user may take; the first is the default authrole. A client
	// may ask for another of them with HELLO.Details.authrole.
	Roles []string
	// Password is a salted PBKDF2 hash (see ParsePassword). It serves
	// ticket authentication (the ticket is the password) and salted
	// WAMP-CRA (the derived key is the shared secret).
	Password *Password
	// Secret is a cleartext shared secret for unsalted WAMP-CRA. Prefer
	// Password; Secret exists for clients that cannot salt.
	Secret string
	// Keys are the user's Ed25519 public keys (cryptosign).
	Keys []ed25519.PublicKey
}

// Password is a PBKDF2-HMAC-SHA256 password hash, in the form WAMP-CRA's
// salted mode uses: the salt is a string used as is, and the derived key is
// kept base64-encoded.
type Password struct {
	Iterations int
	KeyLen     int
	Salt       string
	Key        string // base64 (standard) of the derived key
}

// passwordPrefix starts the text form of a Password.
const passwordPrefix = "pbkdf2-sha256$"

// DefaultIterations is the PBKDF2 work factor HashPassword uses.
const DefaultIterations = 100000

// HashPassword derives a new Password from a cleartext password with a
// random salt.
func HashPassword(password string, iterations int) (*Password, error) {
	if iterations <= 0 {
		iterations = DefaultIterations
	}
	var salt [16]byte
	if _, err := rand.Read(salt[:]); err != nil {
		return nil, err
	}
	p := &Password{Iterations: iterations, KeyLen: defaultKeyLen, Salt: base64.RawStdEncoding.EncodeToString(salt[:])}
	k, err := DeriveKey(password, p.Salt, p.Iterations, p.KeyLen)
	if err != nil {
		return nil, err
	}
	p.Key = k
	return p, nil
}

// DeriveKey is WAMP-CRA's key derivation: PBKDF2-HMAC-SHA256 over the
// secret with the salt's bytes, returned base64-encoded (as Autobahn's
// derive_key does).
func DeriveKey(secret, salt string, iterations, keyLen int) (string, error) {
	k, err := pbkdf2.Key(sha256.New, secret, []byte(salt), iterations, keyLen)
	if err != nil {
		return "", err
	}
	derivedWork.Add(int64(iterations) * int64((keyLen+sha256.Size-1)/sha256.Size))
	return base64.StdEncoding.EncodeToString(k), nil
}

// derivedWork counts the PBKDF2 work DeriveKey has done in this process,
// in iterations times SHA-256 blocks of key: what a password check costs,
// whatever the machine's load. Tests read it to see that a refusal spent
// what a wrong password costs (TestTicketUnknownUserTiming), which timing
// the refusal told only on an idle machine.
var derivedWork atomic.Int64

// String returns the text form: pbkdf2-sha256$ITERATIONS$KEYLEN$SALT$KEY.
func (p *Password) String() string {
	return passwordPrefix + strconv.Itoa(p.Iterations) + "$" + strconv.Itoa(p.KeyLen) + "$" + p.Salt + "$" + p.Key
}

// ParsePassword parses the text form of a Password.
func ParsePassword(s string) (*Password, error) {
	if !strings.HasPrefix(s, passwordPrefix) {
		return nil, errors.New("password hash must start with " + passwordPrefix + " (make one with `edgewamp passwd`)")
	}
	f := strings.Split(strings.TrimPrefix(s, passwordPrefix), "$")
	if len(f) != 4 {
		return nil, errors.New("password hash must be pbkdf2-sha256$ITERATIONS$KEYLEN$SALT$KEY")
	}
	it, err1 := strconv.Atoi(f[0])
	kl, err2 := strconv.Atoi(f[1])
	key, err3 := base64.StdEncoding.DecodeString(f[3])
	if err1 != nil || err2 != nil || err3 != nil || it < 1 || kl < 16 || kl > 64 || len(key) != kl || f[2] == "" {
		return nil, errors.New("malformed password hash")
	}
	return &Password{Iterations: it, KeyLen: kl, Salt: f[2], Key: f[3]}, nil
}

// Verify checks a cleartext password in constant time.
func (p *Password) Verify(password string) bool {
	k, err := DeriveKey(password, p.Salt, p.Iterations, p.KeyLen)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(k), []byte(p.Key)) == 1
}

// ParsePublicKey parses a hex-encoded Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("an Ed25519 public key is %d hex-encoded bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// Users is a realm's static user store. It is immutable once built and safe
// for concurrent use.
type Users struct {
	byID  map[string]*User
	byKey map[string]*User // hex public key → user
	// byMark is byKey by the keys' credMark, what a cryptosign session
	// keeps (heldKey): a reload checks a session's key in one lookup, not
	// by hashing each of its user's keys.
	byMark map[string]*User
	// work and keyLen are the PBKDF2 iterations and key length most of
	// the users' passwords have, and decoy a hash of those nothing
	// matches when they are not the defaults (VerifyDecoy; a longer key
	// costs more blocks).
	work, keyLen int
	decoy        *Password
	// cra is what a WAMP-CRA challenge for an authid that is not a CRA
	// user looks like (craDecoy).
	cra craDecoy
	// decoys are hashes nothing matches, one for each work factor and
	// key length of cra's salted shapes: a ticket for an authid that has
	// no password costs the work its WAMP-CRA challenge names
	// (verifyDecoyFor).
	decoys map[craShape]*Password
}

// craDecoy shapes the challenge WAMP-CRA sends for an authid that has no
// CRA credential, so that it reads like one a user would get: one of the
// CRA users' shapes (plain, or salted with a work factor and key length),
// picked by a keyed hash of the authid (craDecoy.pick) in the users'
// proportions. Before, every such authid got the shape most users had:
// in a realm mixing passwords and plain secrets (deploy/secure.yaml's
// alice and dashboard), the users of the other kind (and those whose
// hash had other iterations or key length) were told apart by one
// HELLO. Its salt (decoySalt) and its pick come from the router's decoy
// key under the realm's name (decoyKeyOf), not from the users' credentials: a reload that rotates a password
// leaves every unknown authid's challenge as it was, as it does a
// user's; one that adds or removes users moves only the authids whose
// shape their shares take or give back (craDecoy.pick).
type craDecoy struct {
	shapes []craShape // the users' shapes, in a fixed order (nil: none)
	total  int        // the users they count
}

// craShape is what a WAMP-CRA challenge tells of its user's credential,
// and how many users (n) have it.
type craShape struct {
	salted       bool
	work, keyLen int
	n            int
}

// pick returns the shape of the decoy challenge for authid under key, in
// the users' proportions: a weighted rendezvous of the shapes, each
// scored from a keyed hash of the authid and the shape, -ln(u)/n, the
// lowest taking it (salted with the default work when there are no CRA
// users). A reload that adds a user then moves only the authids its
// share takes, and one that removes a user only those its share had.
// Before, the shares were laid end to end in a fixed order: a user of a
// shape that sorts first moved every later edge (adding one to a realm
// of two moved half of the strangers, where a third would do), and each
// moved stranger, its salt kept, was told apart from the users.
func (d craDecoy) pick(key *[32]byte, authid string) craShape {
	if d.total == 0 {
		return craShape{salted: true, work: DefaultIterations, keyLen: defaultKeyLen}
	}
	best, bestScore := 0, math.Inf(1)
	var id [16]byte
	var sum [sha256.Size]byte
	m := hmac.New(sha256.New, key[:])
	for i, s := range d.shapes {
		m.Reset()
		m.Write([]byte("wampcra-decoy-shape\x00"))
		b := id[:0]
		if s.salted {
			b = binary.BigEndian.AppendUint64(b, uint64(s.work))
			b = binary.BigEndian.AppendUint64(b, uint64(s.keyLen))
		}
		m.Write(b)
		m.Write([]byte{0})
		m.Write([]byte(authid))
		u := (float64(binary.BigEndian.Uint64(m.Sum(sum[:0]))>>11) + 0.5) / (1 << 53) // in (0, 1)
		if score := -math.Log(u) / float64(s.n); score < bestScore {
			best, bestScore = i, score
		}
	}
	return d.shapes[best]
}

// decoySalt returns the decoy salt for authid under key, in HashPassword's
// form: the same for the same authid and key on every attempt.
func decoySalt(key *[32]byte, authid string) string {
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("wampcra-decoy-salt\x00"))
	m.Write([]byte(authid))
	return base64.RawStdEncoding.EncodeToString(m.Sum(nil)[:16])
}

// decoyKeyFrom derives the decoy key from a secret (Config.DecoySecret);
// an empty secret gets a random key.
func decoyKeyFrom(secret []byte) *[32]byte {
	k := new([32]byte)
	if len(secret) == 0 {
		rand.Read(k[:])
		return k
	}
	h := sha256.New()
	h.Write([]byte("edgewamp wampcra decoy\x00"))
	h.Write(secret)
	h.Sum(k[:0])
	return k
}

// processDecoyKey is the decoy key of a CRAAuth used outside a router.
var processDecoyKey = sync.OnceValue(func() *[32]byte { return decoyKeyFrom(nil) })

// decoyKeyOf returns the key of req's decoys (their salt and shape): the
// router's decoy key (processDecoyKey outside a router) under the realm's
// name. Before, it was the router's for every realm: an authid that is a
// user of no realm got the same salt in each, one that is a user of one
// its hash's salt there and a decoy in the others, and two HELLOs told
// the users of one realm from every stranger.
func decoyKeyOf(req *AuthRequest) *[32]byte { return realmDecoyKey(req.decoyKey, req.Realm) }

// realmDecoyKey derives the decoy key of realm from the router's (nil:
// processDecoyKey).
func realmDecoyKey(key *[32]byte, realm string) *[32]byte {
	if key == nil {
		key = processDecoyKey()
	}
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte("wampcra-decoy-realm\x00"))
	m.Write([]byte(realm))
	k := new([32]byte)
	m.Sum(k[:0])
	return k
}

// VerifyDecoy spends what a wrong password for authid costs in realm on
// r when authid has none among users (not a user, or one with a plain
// secret only): what a wrong WAMP ticket for it costs there (the work
// its WAMP-CRA challenge names, under r's decoy key and the realm's
// name; verifyDecoyFor). For the OAuth2 password grant (cmd's UserStore
// over the realms' users): before, it spent the work most users' hashes
// have for every such authid, so the time of a refusal at /oauth/token
// told a user of other iterations from every stranger, and disagreed
// with the WAMP ticket path's for the same stranger. Safe on a nil
// *Router (a decoy key of the process's) and nil users.
func (r *Router) VerifyDecoy(users *Users, realm, authid, secret string) {
	var key *[32]byte
	if r != nil {
		key = r.decoyKey
	}
	users.verifyDecoyFor(realmDecoyKey(key, realm), authid, secret)
}

// newCRADecoy derives the decoys' shapes from the users.
func newCRADecoy(users []*User) craDecoy {
	count := map[craShape]int{}
	for _, x := range users {
		switch {
		case x.Password != nil:
			count[craShape{salted: true, work: x.Password.Iterations, keyLen: x.Password.KeyLen}]++
		case x.Secret != "":
			count[craShape{}]++
		}
	}
	var d craDecoy
	for s, n := range count {
		s.n = n
		d.shapes = append(d.shapes, s)
		d.total += n
	}
	slices.SortFunc(d.shapes, func(a, b craShape) int {
		switch {
		case a.salted != b.salted:
			if a.salted {
				return 1
			}
			return -1
		case a.work != b.work:
			return cmp.Compare(a.work, b.work)
		}
		return cmp.Compare(a.keyLen, b.keyLen)
	})
	return d
}

// NewUsers builds a user store, rejecting duplicate authids and keys.
func NewUsers(users []*User) (*Users, error) {
	u := &Users{byID: map[string]*User{}, byKey: map[string]*User{}, byMark: map[string]*User{}, decoys: map[craShape]*Password{}}
	var errs []error
	works, keyLens := map[int]int{}, map[int]int{}
	for _, x := range users {
		if x.Password != nil {
			works[x.Password.Iterations]++
			if n := works[x.Password.Iterations]; n > works[u.work] || n == works[u.work] && x.Password.Iterations > u.work {
				u.work = x.Password.Iterations
			}
			keyLens[x.Password.KeyLen]++
			if n := keyLens[x.Password.KeyLen]; n > keyLens[u.keyLen] || n == keyLens[u.keyLen] && x.Password.KeyLen > u.keyLen {
				u.keyLen = x.Password.KeyLen
			}
		}
		if x.AuthID == "" {
			errs = append(errs, errors.New("a user needs an authid"))
			continue
		}
		if len(x.Roles) == 0 {
			errs = append(errs, fmt.Errorf("user %q needs at least one role", x.AuthID))
		}
		if _, dup := u.byID[x.AuthID]; dup {
			errs = append(errs, fmt.Errorf("user %q is defined twice", x.AuthID))
		}
		u.byID[x.AuthID] = x
		for _, k := range x.Keys {
			h := hex.EncodeToString(k)
			if o, dup := u.byKey[h]; dup {
				errs = append(errs, fmt.Errorf("public key %s… belongs to both %q and %q", h[:8], o.AuthID, x.AuthID))
			}
			u.byKey[h] = x
			u.byMark[credMark("cryptosign", x, k)] = x
		}
	}
	if u.keyLen <= 0 {
		u.keyLen = defaultKeyLen
	}
	if u.work != 0 && (u.work != DefaultIterations || u.keyLen != defaultKeyLen) {
		u.decoy = decoyWith(u.work, u.keyLen)
	}
	u.cra = newCRADecoy(users)
	for _, sh := range u.cra.shapes {
		if sh.salted {
			u.decoys[craShape{salted: true, work: sh.work, keyLen: sh.keyLen}] = decoyWith(sh.work, sh.keyLen)
		}
	}
	return u, errors.Join(errs...)
}

// verifyDecoyFor spends what a wrong ticket for authid, which has no
// password, costs so that its refusal does not tell it apart: the work
// of the salted shape its WAMP-CRA challenge would name (an authid that
// is not a CRA user, craDecoy.pick under key), else (a plain challenge:
// a user with a plain secret, or an authid picked plain) what most
// users' passwords cost (VerifyDecoy). Before, every such ticket cost
// the most common work: a user whose hash had another (an administrator
// given 1,000,000 iterations where the others have 100,000) was refused
// ten times slower than any authid that is not a user. Safe on a nil
// *Users.
func (u *Users) verifyDecoyFor(key *[32]byte, authid, secret string) {
	if u == nil {
		VerifyDecoy(secret)
		return
	}
	if x := u.byID[authid]; x == nil || x.Secret == "" {
		if key == nil {
			key = processDecoyKey()
		}
		if sh := u.cra.pick(key, authid); sh.salted {
			if d := u.decoys[craShape{salted: true, work: sh.work, keyLen: sh.keyLen}]; d != nil {
				d.Verify(secret)
				return
			}
		}
	}
	u.VerifyDecoy(secret)
}

// DecoysVary reports whether what is answered to an authid that is not
// one of u's users depends on the router's decoy key (Config.DecoySecret)
// in a realm taking WAMP-CRA (cra) or tickets (ticket; cmd's OAuth2
// password grant costs the same): a WAMP-CRA challenge's salt when a
// user has a password (a stranger's comes from the key, a user's from
// its hash), a wrong ticket's work when the users' shapes cost more than
// one amount (verifyDecoyFor). Then two routers with different keys (the
// nodes of a mesh, each with a key of its own, or one router before and
// after a restart without a kept key) answer the same stranger
// differently where they answer a user alike, which tells the users
// apart. Safe on a nil *Users.
func (u *Users) DecoysVary(cra, ticket bool) bool {
	if u == nil || u.cra.total == 0 {
		return false // no CRA user: every authid's decoys change alike, none tells
	}
	blocks := func(work, keyLen int) int64 {
		return int64(work) * int64((keyLen+sha256.Size-1)/sha256.Size)
	}
	// plain: what u.VerifyDecoy costs, a plain shape's ticket.
	plain := blocks(DefaultIterations, defaultKeyLen)
	if u.decoy != nil {
		plain = blocks(u.decoy.Iterations, u.decoy.KeyLen)
	}
	var cost int64
	for i, sh := range u.cra.shapes {
		if sh.salted && cra {
			return true
		}
		c := plain
		if sh.salted {
			c = blocks(sh.work, sh.keyLen)
		}
		if ticket && i > 0 && c != cost {
			return true
		}
		cost = c
	}
	return false
}

// VerifyDecoy spends what checking a wrong password of one of u's users
// costs (the work factor most of their passwords have, the default when
// none has one), so that a refusal for an unknown principal takes as long
// as one for a known principal. Safe on a nil *Users.
func (u *Users) VerifyDecoy(secret string) {
	if u == nil || u.decoy == nil {
		VerifyDecoy(secret)
		return
	}
	u.decoy.Verify(secret)
}

// Lookup returns the user with authid, or nil.
func (u *Users) Lookup(authid string) *User {
	if u == nil {
		return nil
	}
	return u.byID[authid]
}

// role picks the session's authrole: the requested one if the user has it,
// else the user's first.
func (x *User) role(requested string) (string, bool) {
	if requested == "" {
		return x.Roles[0], true
	}
	for _, r := range x.Roles {
		if r == requested {
			return r, true
		}
	}
	return "", false
}

// HasRole reports whether the user may take role.
func (x *User) HasRole(role string) bool {
	_, ok := x.role(role)
	return ok
}

// failAuth is the error for a failed check: the same URI whether the user
// is unknown or the secret is wrong, so that authids cannot be probed
// (WAMP-CRA challenges an unknown authid with a decoy and fails it here).
func failAuth() error {
	return &AuthError{URI: "wamp.error.authentication_failed", Message: "authentication failed"}
}

func noPrincipal(authid string) error {
	return &AuthError{URI: "wamp.error.no_such_principal", Message: "no principal " + strconv.Quote(authid)}
}

func badRole(authid, role string) error {
	return &AuthError{URI: "wamp.error.no_such_role", Message: "principal " + strconv.Quote(authid) + " may not take role " + strconv.Quote(role)}
}

// hmacB64 computes base64(HMAC-SHA256(key, msg)) (WAMP-CRA's signature).
func hmacB64(key, msg []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// CRASignature computes a WAMP-CRA signature, base64(HMAC-SHA256(secret,
// challenge)), as a client does. For salted passwords pass the derived key
// (DeriveKey) as the secret.
func CRASignature(secret, challenge string) string {
	return hmacB64([]byte(secret), []byte(challenge))
}
