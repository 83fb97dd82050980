package oauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Micro-benchmarks of the token paths (go test -bench . -benchmem ./oauth).

func benchServer(b *testing.B, alg string) *Server {
	s, err := New(Options{Issuer: "http://127.0.0.1:1", Realms: testRealms(b), Users: newTestUsers(), Algorithm: alg,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchToken(b *testing.B, s *Server) string {
	c := s.cfg.Load().clients["backend"]
	resp, oe := s.respond(context.Background(), &login{client: c, sub: "backend", roles: c.Roles, scope: "read"}, false)
	if oe != nil {
		b.Fatal(oe)
	}
	return resp.AccessToken
}

func BenchmarkIssue(b *testing.B) {
	for _, alg := range []string{"EdDSA", "ES256"} {
		b.Run("alg="+alg, func(b *testing.B) {
			s := benchServer(b, alg)
			b.ReportAllocs()
			for b.Loop() {
				benchToken(b, s)
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"EdDSA", "ES256"} {
		s := benchServer(b, alg)
		tok := benchToken(b, s)
		b.Run("alg="+alg+"/uncached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.verify(tok, time.Now(), false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("alg="+alg+"/cached", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.VerifyAccessToken(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("cached/parallel", func(b *testing.B) {
		s := benchServer(b, "EdDSA")
		toks := make([]string, 64)
		for i := range toks {
			toks[i] = benchToken(b, s)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.VerifyAccessToken(toks[i%len(toks)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	})
}

// BenchmarkClientCredentialsHTTP is the token endpoint end to end over
// loopback HTTP (secret cache warm).
func BenchmarkClientCredentialsHTTP(b *testing.B) {
	s := benchServer(b, "EdDSA")
	h := s.Handler()
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		rec := newRecorder()
		req := newFormRequest("/oauth/token", form)
		req.SetBasicAuth("backend", backendSec)
		req.RemoteAddr = "10.0.0." + strconv.Itoa(i%200) + ":1"
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code, rec.Body.String())
		}
	}
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

func newFormRequest(path, form string) *http.Request {
	r := httptest.NewRequest("POST", path, strings.NewReader(form))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}
