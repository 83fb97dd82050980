package route

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"time"
)

// TokenVerifier checks a bearer token presented as a WAMP ticket (a JWT
// issued by the OAuth2 server) for a HELLO: the realm it must be for, the
// authid and authrole the client asked for ("" when it named none). It runs
// on the worker pool and returns an *AuthError for a refusal.
type TokenVerifier interface {
	VerifyTicket(req *AuthRequest, ticket string) (*Identity, error)
}

// TicketAuth is WAMP-Ticket authentication: the client sends a secret in
// AUTHENTICATE. With Tokens set, a ticket shaped like a JWT is an access
// token, verified by Tokens whatever the authid (a user with a password
// may log in with a token too); any other ticket is a static user's
// password, verified against its PBKDF2 hash.
type TicketAuth struct {
	Users  *Users
	Tokens TokenVerifier
}

// Method implements Authenticator.
func (a *TicketAuth) Method() string { return "ticket" }

// Challenge implements Authenticator: ticket sends an empty challenge. The
// authid is optional when tokens are accepted: a token names its principal.
func (a *TicketAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	if req.AuthID == "" && a.Tokens == nil {
		return nil, nil, nil, &AuthError{URI: "wamp.error.no_such_principal", Message: "ticket authentication needs an authid"}
	}
	return map[string]any{}, nil, nil, nil
}

// Authenticate implements Authenticator.
func (a *TicketAuth) Authenticate(req *AuthRequest, _ any, ticket string, _ map[string]any) (*Identity, error) {
	if a.Tokens != nil && LooksLikeJWT(ticket) {
		return a.Tokens.VerifyTicket(req, ticket)
	}
	if req.AuthID == "" {
		return nil, &AuthError{URI: "wamp.error.no_such_principal", Message: "ticket authentication needs an authid, or an access token as the ticket"}
	}
	if u := a.Users.Lookup(req.AuthID); u != nil && u.Password != nil {
		if !u.Password.Verify(ticket) {
			return nil, failAuth()
		}
		role, ok := u.role(req.AuthRole)
		if !ok {
			return nil, badRole(u.AuthID, req.AuthRole)
		}
		return &Identity{AuthID: u.AuthID, AuthRole: role, AuthProvider: "static", cred: credMark("ticket", u, nil)}, nil
	}
	// No such user, or none with a password: spend what checking one
	// costs, so that the time to the ABORT does not tell.
	a.Users.verifyDecoyFor(decoyKeyOf(req), req.AuthID, ticket)
	return nil, failAuth()
}

// VerifyDecoy spends what checking a password with the default work
// factor costs, against a hash nothing matches: a refusal for an unknown
// principal then takes as long as a wrong password for a known one.
func VerifyDecoy(secret string) { decoyPassword().Verify(secret) }

// decoyPassword is a hash with the default work factor that no secret
// matches (its key is not derived from anything).
var decoyPassword = sync.OnceValue(func() *Password { return decoyWith(DefaultIterations, defaultKeyLen) })

// defaultKeyLen is the key length HashPassword derives.
const defaultKeyLen = 32

// decoyWith returns a hash of work iterations and a key of keyLen bytes
// that no secret matches.
func decoyWith(work, keyLen int) *Password {
	var salt [16]byte
	rand.Read(salt[:])
	key := make([]byte, keyLen)
	rand.Read(key)
	return &Password{Iterations: work, KeyLen: keyLen,
		Salt: base64.RawStdEncoding.EncodeToString(salt[:]), Key: base64.StdEncoding.EncodeToString(key)}
}

// LooksLikeJWT reports whether s has the shape of a compact JWS: three
// base64url parts, the first a JSON object ("eyJ" encodes `{"`). A
// password of that shape would be taken for a token.
func LooksLikeJWT(s string) bool {
	return len(s) > 16 && strings.HasPrefix(s, "eyJ") && strings.Count(s, ".") == 2
}

// CRAAuth is WAMP-CRA: an HMAC-SHA256 challenge-response over a shared
// secret that never travels. With a user's Password the challenge carries
// the salt, key length and iterations, and the shared secret is the derived
// key (the password itself is never stored); with a cleartext Secret the
// challenge is plain.
type CRAAuth struct {
	Users *Users
	// Now is the clock for the challenge timestamp; default time.Now.
	Now func() time.Time
}

type craState struct {
	challenge string
	key       string
	identity  Identity
	// decoy: the authid has no CRA credential; every signature fails.
	// badRole: the user may not take the role asked for, which the
	// client learns only once its signature proves it is the user.
	decoy   bool
	badRole error
}

// Method implements Authenticator.
func (a *CRAAuth) Method() string { return "wampcra" }

// Challenge implements Authenticator. An authid that is not a CRA user,
// or a user asking for a role it may not take, gets a challenge like any
// other (a decoy: one of the users' shapes, plain or salted with their work
// factor, picked for the authid in their proportions, the same salt for
// the same authid every time; every challenge text names the role HELLO
// asked for, "" when none, never the user's) and fails at AUTHENTICATE with
// authentication_failed, so that a client cannot tell which authids
// exist; a user whose signature is right learns that its role was refused
// (no_such_role). Only HELLO without an authid gets no_such_principal.
func (a *CRAAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	if req.AuthID == "" {
		return nil, nil, nil, noPrincipal(req.AuthID)
	}
	u := a.Users.Lookup(req.AuthID)
	if u == nil || (u.Password == nil && u.Secret == "") {
		return a.decoyChallenge(req)
	}
	var refused error
	role, ok := u.role(req.AuthRole)
	if !ok {
		role, refused = req.AuthRole, badRole(u.AuthID, req.AuthRole)
	}
	st := &craState{identity: Identity{AuthID: u.AuthID, AuthRole: role, AuthProvider: "static", cred: credMark("wampcra", u, nil)}, badRole: refused}
	// The role HELLO asked for ("" when none), not the user's: a user's
	// own first role, unlike any stranger's, told that the authid
	// exists, and named its role.
	st.challenge = a.challengeText(u.AuthID, req.AuthRole)
	extra := map[string]any{"challenge": st.challenge}
	if u.Password != nil {
		st.key = u.Password.Key
		extra["salt"] = u.Password.Salt
		extra["keylen"] = u.Password.KeyLen
		extra["iterations"] = u.Password.Iterations
	} else {
		st.key = u.Secret
	}
	return extra, st, nil, nil
}

// decoyChallenge challenges an authid that has no CRA credential.
func (a *CRAAuth) decoyChallenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	var d craDecoy
	if a.Users != nil {
		d = a.Users.cra
	}
	dk := decoyKeyOf(req)
	var key [32]byte
	rand.Read(key[:])
	st := &craState{decoy: true, key: base64.StdEncoding.EncodeToString(key[:])}
	st.challenge = a.challengeText(req.AuthID, req.AuthRole)
	extra := map[string]any{"challenge": st.challenge}
	if s := d.pick(dk, req.AuthID); s.salted {
		extra["salt"] = decoySalt(dk, req.AuthID)
		extra["keylen"] = s.keyLen
		extra["iterations"] = s.work
	}
	return extra, st, nil, nil
}

// challengeText is the WAMP-CRA challenge string for authid and role.
func (a *CRAAuth) challengeText(authid, role string) string {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	var nonce [16]byte
	rand.Read(nonce[:])
	// [WAMP-CRA]: the challenge MUST be a JSON serialized object containing
	// authid, authrole, authmethod, authprovider, nonce, timestamp and
	// session. The session id is assigned at WELCOME, so 0 here.
	ch, _ := json.Marshal(map[string]any{
		"authid":       authid,
		"authrole":     role,
		"authmethod":   "wampcra",
		"authprovider": "static",
		"nonce":        base64.RawURLEncoding.EncodeToString(nonce[:]),
		"timestamp":    now().UTC().Format("2006-01-02T15:04:05.000Z"),
		"session":      0,
	})
	return string(ch)
}

// Authenticate implements Authenticator.
func (a *CRAAuth) Authenticate(_ *AuthRequest, state any, signature string, _ map[string]any) (*Identity, error) {
	st, ok := state.(*craState)
	if !ok {
		return nil, failAuth()
	}
	want := hmacB64([]byte(st.key), []byte(st.challenge))
	if !hmac.Equal([]byte(want), []byte(strings.TrimSpace(signature))) || st.decoy {
		return nil, failAuth()
	}
	if st.badRole != nil {
		return nil, st.badRole
	}
	id := st.identity
	return &id, nil
}

// CryptosignAuth is WAMP-Cryptosign: the client proves it holds the private
// key of an Ed25519 public key the router knows, by signing a random
// 32-byte challenge.
type CryptosignAuth struct {
	Users *Users
}

type csState struct {
	challenge []byte
	pub       ed25519.PublicKey
	identity  Identity
	// badRole: the user may not take the role asked for, which the client
	// learns only once its signature proves it holds the key (as
	// WAMP-CRA's).
	badRole error
}

// Method implements Authenticator.
func (a *CryptosignAuth) Method() string { return "cryptosign" }

// Challenge implements Authenticator.
func (a *CryptosignAuth) Challenge(req *AuthRequest) (map[string]any, any, *Identity, error) {
	pk, _ := req.AuthExtra["pubkey"].(string)
	pub, err := ParsePublicKey(pk)
	if err != nil {
		return nil, nil, nil, &AuthError{URI: "wamp.error.authentication_failed", Message: "cryptosign needs HELLO.Details.authextra.pubkey: " + err.Error()}
	}
	// [Cryptosign]: channel_binding is a string naming the binding
	// ("tls-unique"), or null. Another value was taken for none, and a
	// client asking for a binding in it was authenticated without one.
	switch cb := req.AuthExtra["channel_binding"].(type) {
	case nil:
	case string:
		if cb != "" {
			return nil, nil, nil, &AuthError{URI: "wamp.error.authentication_failed", Message: "TLS channel binding " + cb + " is not supported"}
		}
	default:
		return nil, nil, nil, &AuthError{URI: "wamp.error.authentication_failed", Message: "HELLO.Details.authextra.channel_binding must be a string naming the binding, or null (TLS channel binding is not supported)"}
	}
	var u *User
	if a.Users != nil {
		u = a.Users.byKey[hex.EncodeToString(pub)]
	}
	if u == nil || (req.AuthID != "" && req.AuthID != u.AuthID) {
		// [Cryptosign]: the router identifies the client by its public key.
		return nil, nil, nil, noPrincipal(req.AuthID)
	}
	// A role the user may not take is told after the signature: a public
	// key is public, and without the private key it must not tell which
	// roles its user holds.
	var refused error
	role, ok := u.role(req.AuthRole)
	if !ok {
		role, refused = req.AuthRole, badRole(u.AuthID, req.AuthRole)
	}
	ch := make([]byte, 32)
	rand.Read(ch)
	st := &csState{challenge: ch, pub: pub, badRole: refused,
		identity: Identity{AuthID: u.AuthID, AuthRole: role, AuthProvider: "static", cred: credMark("cryptosign", u, pub)}}
	return map[string]any{"challenge": hex.EncodeToString(ch), "channel_binding": nil}, st, nil, nil
}

// Authenticate implements Authenticator. It accepts the 96-byte form
// (signature followed by the challenge, as Autobahn and wampy send) and the
// bare 64-byte signature.
func (a *CryptosignAuth) Authenticate(_ *AuthRequest, state any, signature string, _ map[string]any) (*Identity, error) {
	st, ok := state.(*csState)
	if !ok {
		return nil, failAuth()
	}
	sig, err := hex.DecodeString(strings.TrimSpace(signature))
	if err != nil {
		return nil, failAuth()
	}
	switch len(sig) {
	case ed25519.SignatureSize + 32:
		if !hmac.Equal(sig[ed25519.SignatureSize:], st.challenge) {
			return nil, failAuth()
		}
		sig = sig[:ed25519.SignatureSize]
	case ed25519.SignatureSize:
	default:
		return nil, failAuth()
	}
	if !ed25519.Verify(st.pub, st.challenge, sig) {
		return nil, failAuth()
	}
	if st.badRole != nil {
		return nil, st.badRole
	}
	id := st.identity
	return &id, nil
}

// credMark names the credential a static user authenticates with by
// method (for cryptosign, the key pub it used), as a hash: a session keeps
// it, and a reload after which the user no longer holds it (credHeld: a
// new password or secret, the key removed) ends the session. "" when the
// user has none.
func credMark(method string, u *User, pub ed25519.PublicKey) string {
	var m string
	switch {
	case method == "cryptosign":
		if pub == nil {
			return ""
		}
		m = "key\x00" + string(pub)
	case u.Password != nil && (method == "ticket" || method == "wampcra"):
		p := u.Password
		m = "pbkdf2\x00" + strconv.Itoa(p.Iterations) + "\x00" + strconv.Itoa(p.KeyLen) + "\x00" + p.Salt + "\x00" + p.Key
	case method == "wampcra" && u.Secret != "":
		m = "secret\x00" + u.Secret
	default:
		return ""
	}
	h := sha256.Sum256([]byte(method + "\x00" + m))
	return hex.EncodeToString(h[:16])
}

// credHeld reports whether u, a user of us, still holds the credential
// marked mark for method. A cryptosign key is looked up by its mark
// (Users.byMark): hashing each of u's keys made a reload's identity check
// cost a session as many hashes as its user has keys, a fleet of devices
// logged in under one authid with a key each as many as the fleet squared
// (2,000 of them held the event loop 0.75-1.9 s at every reload).
func credHeld(us *Users, method string, u *User, mark string) bool {
	if method == "cryptosign" {
		return us != nil && us.byMark[mark] == u
	}
	return credMark(method, u, nil) == mark
}
