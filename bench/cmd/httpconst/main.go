// Command httpconst is the ceiling of the HTTP gateway benchmark: a bare
// net/http server that answers every request with the same small JSON
// document, the shape of a call result. make bench-e2e measures it side by
// side with the gateway, with the same load tool (wampbench -scenario
// httpcall).
//
//	httpconst -listen 127.0.0.1:18082 [-payload 64]
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18082", "address")
	payload := flag.Int("payload", 64, "bytes of the result's string argument")
	flag.Parse()
	body := []byte(`{"args":["` + strings.Repeat("x", *payload) + `"],"kwargs":{}}`)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // as a real handler reads the request
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	srv := &http.Server{Addr: *listen, Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, "httpconst:", err)
		os.Exit(1)
	}
}
