// Package oauth is edgewamp's OAuth2 authorization server: the token
// endpoint (password, client_credentials, refresh_token with rotation and
// reuse detection, the device authorization grant of RFC 8628, and the
// authorization code grant with PKCE S256), JWT access tokens signed with
// EdDSA or ES256 from a rotated key ring, the JWKS, revocation (RFC 7009),
// introspection (RFC 7662), metadata (RFC 8414), a small script-free login
// and approval page, and verification of the tokens it issued.
//
// # Contract with the other packages
//
// oauth imports nothing internal (stdlib, lestrrat-go/jwx/v2).
//
//   - Server: New(Options) (*Server, error); Handler() http.Handler serves
//     every endpoint (cmd mounts it on the gateway's listener);
//     VerifyAccessToken(token) (*Claims, error) is pure CPU (no network),
//     safe for concurrent use, cached, and is what cmd adapts to
//     route.TokenVerifier (WAMP ticket logins) and to gateway's
//     BearerVerifier (HTTP logins). The caller checks the audience (the
//     realm), and the scope or role it needs.
//   - Options.OnRevoke tells cmd which token ids (jti) and logins (gid)
//     became revoked, here at once and from other nodes at the next sync,
//     and an id IsClientRevocationID tells apart when a client's tokens
//     without a gid issued to one subject up to a cut-off were
//     (Claims.RevocationIDs lists a token's);
//     StillValid(claims, role) re-checks a token against the current
//     configuration and revocations (not its expiry), and
//     HeldRoles(claims) lists the token's roles that pass it (the
//     gateway's route auth.roles, introspection), HeldScopes(claims) the
//     scopes its client may still have (auth.scopes). cmd ends the WAMP
//     sessions that logged in with revoked or withdrawn tokens with them.
//   - Users and their password hashes come through an interface oauth
//     declares (UserStore); cmd adapts the realms' user lists to it.
//   - State (refresh tokens, device and authorization codes, revoked jti,
//     signing keys) goes through Store, an interface oauth declares, with an
//     in-memory (NewMemStore) and an on-disk (OpenDiskStore) implementation
//     here; cmd adapts edge's JetStream KV to it when a mesh is configured.
//     Store's doc states the semantics an implementation must keep, and
//     oauth/storetest checks them (RunShared: through several nodes'
//     handles on one shared store).
//
// # Endpoints
//
// Below the issuer URL's path: POST /oauth/token, POST
// /oauth/device_authorization, GET|POST /oauth/device (the verification
// page), GET|POST /oauth/authorize (the authorization endpoint and its
// page), POST /oauth/revoke, POST /oauth/introspect, GET
// /.well-known/jwks.json, GET /oauth/static/style.css; and GET
// /.well-known/oauth-authorization-server followed by the issuer's path.
//
// # Concurrency
//
// Every Server method and every handler is safe for concurrent use. The
// configuration (SetRealms) and the key ring are immutable snapshots
// swapped through atomic pointers; the revocation set is a sync.Map; the
// verified-token cache is 16 shards under RW mutexes. Password and secret
// hashing (PBKDF2) runs on the request's goroutine, at most GOMAXPROCS of
// them at once. One background goroutine (stopped by Close) re-reads the
// revocations (with a SinceLister store, only those written since its last
// read; all of them at start, after a failed round and every 60 rounds)
// and the key ring from the store every SyncInterval, rotates
// generated keys, and deletes expired records. Handlers block on the store;
// VerifyAccessToken never does.
//
// # Security
//
// Secrets are stored hashed (client secrets: PBKDF2; refresh tokens, device
// and authorization codes: SHA-256), compared in constant time, and never
// logged; neither are tokens. Failed client, password and user-code
// attempts are rate limited per source address (IPv6 per /64). Tokens
// carry kid and typ at+jwt; verification takes the key from the ring by kid
// and requires its algorithm, so "none", algorithm confusion and embedded
// keys fail. The page sends no script, a strict Content-Security-Policy,
// and needs a CSRF token bound to a SameSite=Strict cookie.
package oauth
