package load

import (
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"encoding/json"

	"github.com/edgewamp/edgewamp/oauth"
)

// MintOptions describe access tokens for a JWT authentication storm.
type MintOptions struct {
	N        int           // tokens, each with its own jti (a distinct ticket)
	KeyFile  string        // the router's oauth.key_files entry (PEM)
	Issuer   string        // the router's oauth.issuer
	Realm    string        // aud
	Roles    []string      // the tokens' roles
	Lifetime time.Duration // long enough to outlive the benchmark
}

// MintTokens issues N access tokens as the router's own OAuth2 server
// would (same key, same issuer): an oauth.Server in this process, its token
// endpoint called in memory with client_credentials, one line per token on
// w. The router verifies them as its own.
func MintTokens(o MintOptions, w io.Writer) error {
	pem, err := os.ReadFile(o.KeyFile)
	if err != nil {
		return err
	}
	key, err := oauth.ParsePrivateKeyPEM(pem)
	if err != nil {
		return err
	}
	const secret = "wampbench-mint"
	hash, err := oauth.HashSecret(secret, 1000)
	if err != nil {
		return err
	}
	srv, err := oauth.New(oauth.Options{
		Issuer: o.Issuer, SigningKeys: []crypto.Signer{key}, Logger: slog.New(slog.DiscardHandler),
		Realms: []oauth.Realm{{Name: o.Realm, AccessTokenLifetime: o.Lifetime, Grants: []string{oauth.GrantClientCredentials}, Clients: []oauth.Client{{
			ID: "wampbench", SecretHash: hash, Roles: o.Roles, Grants: []string{oauth.GrantClientCredentials}}}}},
	})
	if err != nil {
		return err
	}
	defer srv.Close()
	h := srv.Handler()
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	for i := 0; i < o.N; i++ {
		req := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("wampbench", secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			return fmt.Errorf("minting a token: %d %s", rec.Code, rec.Body.String())
		}
		var t struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &t); err != nil {
			return err
		}
		fmt.Fprintln(w, t.AccessToken)
	}
	return nil
}
