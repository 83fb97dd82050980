package gateway

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/proto"
)

// corsPolicy is a CORS configuration bound to the methods of one
// endpoint.
type corsPolicy struct {
	CORS
	methods string // "POST, OPTIONS"
	any     bool   // "*" among the origins
	headers map[string]bool
}

func newCORSPolicy(c *CORS, methods []string, apiKeyHeader string) *corsPolicy {
	if c == nil {
		return nil
	}
	p := &corsPolicy{CORS: *c, methods: strings.Join(append(append([]string(nil), methods...), "OPTIONS"), ", "), headers: map[string]bool{}}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			p.any = true
		}
	}
	hs := c.AllowedHeaders
	if len(hs) == 0 {
		hs = []string{"Content-Type", "Authorization", apiKeyHeader, "Last-Event-ID", "Accept"}
	}
	for _, h := range hs {
		p.headers[http.CanonicalHeaderKey(h)] = true
	}
	if p.MaxAge <= 0 {
		p.MaxAge = 10 * time.Minute
	}
	return p
}

// validateCORS checks a CORS configuration.
func validateCORS(c *CORS, path ...any) []error {
	if c == nil {
		return nil
	}
	var errs []error
	for i, o := range c.AllowedOrigins {
		if o == "null" {
			// The origin of a sandboxed page or a file, and the one a
			// cross-site request without Origin counts as (refuseOrigins).
			continue
		}
		if o == "*" {
			if c.AllowCredentials {
				errs = append(errs, fieldErr(`"*" cannot be combined with allow_credentials (browsers refuse it)`, append(path, "allowed_origins", i)...))
			}
			continue
		}
		// Only what a browser's Origin can be: before, a wildcard host
		// (https://*.example.com), user info, a fragment or a lone "?"
		// were taken, matched no Origin, and the page's every request
		// was refused 403.
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" ||
			u.User != nil || u.Fragment != "" || strings.HasSuffix(o, "#") || u.ForceQuery || strings.Contains(u.Host, "*") {
			errs = append(errs, fieldErr("an origin is scheme://host[:port] as a browser sends it (no wildcard, user info, query or fragment), null or *, not "+strconv.Quote(o), append(path, "allowed_origins", i)...))
		}
	}
	return errs
}

func (p *corsPolicy) allowed(origin string) bool {
	if p.any {
		return true
	}
	for _, o := range p.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

// corsHandled applies the policy. A preflight (OPTIONS with Origin and
// Access-Control-Request-Method) is answered here: 204 with the grants, or
// 403 when the origin, method or a header is not allowed; it returns true.
// Other requests from an allowed origin get the response headers. A plain
// OPTIONS gets 204 with Allow.
func corsHandled(p *corsPolicy, w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	h := w.Header()
	if r.Method == http.MethodOptions {
		reqMethod := r.Header.Get("Access-Control-Request-Method")
		if origin == "" || reqMethod == "" {
			h.Set("Allow", p.methods)
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		h.Add("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
		if !p.allowed(origin) {
			writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "origin "+strconv.Quote(origin)+" is not allowed"))
			return true
		}
		if !strings.Contains(", "+p.methods+",", ", "+reqMethod+",") {
			writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "method "+reqMethod+" is not allowed here"))
			return true
		}
		var granted []string
		for _, f := range r.Header.Values("Access-Control-Request-Headers") {
			for _, name := range strings.Split(f, ",") {
				name = http.CanonicalHeaderKey(strings.TrimSpace(name))
				if name == "" {
					continue
				}
				if !p.headers[name] {
					writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "header "+name+" is not allowed"))
					return true
				}
				granted = append(granted, name)
			}
		}
		p.setOrigin(h, origin)
		h.Set("Access-Control-Allow-Methods", p.methods)
		if len(granted) > 0 {
			h.Set("Access-Control-Allow-Headers", strings.Join(granted, ", "))
		}
		h.Set("Access-Control-Max-Age", strconv.Itoa(int(p.MaxAge/time.Second)))
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	if origin != "" && p.allowed(origin) {
		h.Add("Vary", "Origin")
		p.setOrigin(h, origin)
		if len(p.ExposedHeaders) > 0 {
			h.Set("Access-Control-Expose-Headers", strings.Join(p.ExposedHeaders, ", "))
		}
	}
	return false
}

func (p *corsPolicy) setOrigin(h http.Header, origin string) {
	if p.any && !p.AllowCredentials {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if p.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
}

// refuseOrigins wraps an endpoint that acts (a bridge endpoint, a route):
// a request from a browser page of an origin the CORS policy p (nil:
// none) does not allow is refused before anything runs. CORS alone only
// hides the answer: a page's no-cors POST (no preflight, a Blob body
// without Content-Type) would still call and publish as the visitor's
// network's anonymous role, on a gateway on loopback or the LAN. Browsers
// send Origin with every POST and every cross-origin fetch, but not with
// the GET or HEAD of an image, a script, a style sheet or a navigation:
// those say Sec-Fetch-Site: cross-site, and are taken as from origin
// "null" (allowed only by a policy of "*" or "null"), which kept another
// site's page from calling a GET route. Programs other than browsers send
// neither header, and are not affected.
func refuseOrigins(p *corsPolicy, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := r.Header.Get("Origin")
		if o == "" && r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			if p == nil || !p.allowed("null") {
				writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "cross-site requests from a browser page are not allowed (gateway.cors.allowed_origins)"))
				return
			}
		}
		if o != "" && (p == nil || !p.allowed(o)) {
			writeProblem(w, newProblem(http.StatusForbidden, proto.URINotAuthorized, "requests from origin "+strconv.Quote(o)+" are not allowed (gateway.cors.allowed_origins)"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
