// Package oauth is edgewamp's OAuth2 authorization server: grants, JWT
// access tokens, refresh-token rotation, the device flow, JWKS, and
// verification of the tokens it issued (issue 13; in progress, see README's
// feature table).
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
//     BearerVerifier (HTTP logins).
//   - Users and their password hashes come through an interface oauth
//     declares (UserStore); cmd adapts the realms' user lists to it.
//   - State (refresh tokens, device and authorization codes, revoked jti,
//     signing keys) goes through Store, an interface oauth declares, with an
//     in-memory and an on-disk implementation here; cmd adapts edge's
//     JetStream KV to it when a mesh is configured.
package oauth
