// Command wampbench is a lean WAMP load generator: idle sessions, RPC,
// PubSub, join churn and an authentication storm, over WebSocket or
// RawSocket with JSON, MsgPack or CBOR; and the HTTP gateway's calls,
// event streams and OAuth2 token issuance. Every run is bounded and ends with
// one line "RESULT scenario=... key=value ...". See bench/README.md.
//
//	wampbench -scenario rpc -url ws://127.0.0.1:8080/ws -ser msgpack -callers 16 -payload 64
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/edgewamp/edgewamp/bench/internal/load"
	"github.com/edgewamp/edgewamp/proto"
)

func main() {
	if js := os.Getenv(load.WorkerEnv); js != "" {
		if err := load.RunWorker(js, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wampbench worker:", err)
			os.Exit(1)
		}
		return
	}
	var c load.Config
	var ser string
	fs := flag.CommandLine
	fs.StringVar(&c.Scenario, "scenario", "rpc", "idle, rpc, pubsub, churn, authstorm, httpcall, sse or tokens")
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8080/ws", "router: ws://HOST:PORT/PATH, rs://HOST:PORT or tcp://HOST:PORT")
	fs.StringVar(&ser, "ser", "msgpack", "serializer: json, msgpack or cbor")
	fs.StringVar(&c.Realm, "realm", "realm1", "realm")
	fs.StringVar(&c.Src, "src", "", "source addresses to connect from, e.g. 127.0.0.2-127.0.0.40 (spreads ephemeral ports)")
	fs.StringVar(&c.Label, "label", "-", "target name written in the RESULT line")
	fs.IntVar(&c.RouterPID, "router-pid", 0, "router process id: read its RSS, open files and CPU from /proc")
	fs.IntVar(&c.Loops, "loops", 0, "client event loops (0: one per CPU this process may use)")
	fs.StringVar(&c.Driver, "driver", "gnet", "rpc, pubsub: gnet (its client event loops), uring (the tool's own loops: epoll, and io_uring for every read and write of a round; no TLS) or, rpc only, goroutine (one per session)")
	fs.BoolVar(&c.Spin, "spin", false, "-driver uring: the loops poll (epoll_wait with a zero timeout) instead of sleeping, so that a router's send over loopback never wakes the tool (on loopback the sender's system call runs the receiver's wake-up); takes every CPU the tool may use")
	fs.IntVar(&c.Parallel, "parallel", 32, "connects in flight while opening sessions")
	fs.DurationVar(&c.Warmup, "warmup", time.Second, "traffic before measuring")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "measured time (rpc, pubsub, churn; authstorm baseline, at most 2s)")
	fs.DurationVar(&c.Timeout, "timeout", 60*time.Second, "limit for connecting and joining")
	fs.IntVar(&c.Payload, "payload", 64, "payload bytes per call or event (Arguments)")
	fs.IntVar(&c.Callers, "callers", 16, "rpc: callers, each with one call outstanding; httpcall, tokens: HTTP clients (keep-alive connections)")
	fs.IntVar(&c.Callees, "callees", 1, "rpc: callees sharing the registration (roundrobin when > 1)")
	fs.StringVar(&c.Procedure, "procedure", "com.bench.echo", "rpc: procedure URI")
	fs.StringVar(&c.CalleeURL, "callee-url", "", "rpc: the callees join this router (another node of a mesh); the callers join -url. httpcall: the WAMP URL where the tool registers the callee (ws://HOST:PORT/ws); none against a bare HTTP server; tokens: the router's WAMP URL, where one caller keeps calling an echo callee (its p99 during the issuance)")
	meshPIDs := fs.String("mesh-pids", "", "the other router processes of a mesh (comma-separated pids): their CPU is reported as mesh_cpu_pct, not counted as other processes'")
	subURLs := fs.String("sub-urls", "", "pubsub: spread the subscribers over these routers (comma-separated; the nodes of a mesh); the publishers join -url")
	fs.IntVar(&c.Publishers, "publishers", 1, "pubsub: publishers")
	fs.IntVar(&c.Subscribers, "subscribers", 100, "pubsub: subscribers; sse: event streams")
	fs.Float64Var(&c.Rate, "rate", 0, "pubsub, sse: publications/s of all publishers (0: saturation; sse needs a rate)")
	fs.Float64Var(&c.EventRate, "event-rate", 0, "pubsub: events delivered/s target; sets -rate to this / subscribers")
	fs.StringVar(&c.Topic, "topic", "com.bench.topic", "pubsub: topic URI")
	fs.IntVar(&c.PubBatch, "pub-batch", 16, "pubsub saturation: publications per write")
	fs.IntVar(&c.InFlight, "inflight", 300000, "pubsub saturation: events in flight at most (published x subscribers - delivered), so the backlog and latency stay bounded; -1: no limit (kernel buffers fill, the router drops at its high-water mark)")
	fs.IntVar(&c.Sessions, "sessions", 5000, "idle: sessions to open and hold")
	fs.IntVar(&c.Procs, "procs", 0, "idle/authstorm: worker processes (0: idle one per 9,000 sessions, authstorm 1)")
	fs.DurationVar(&c.Settle, "settle", 2*time.Second, "idle: wait after the last join before reading the router's RSS")
	fs.IntVar(&c.Workers, "workers", 64, "churn: concurrent joiners")
	fs.Float64Var(&c.ChurnRate, "churn-rate", 5000, "churn: joins/s target")
	fs.IntVar(&c.Storm, "storm", 1000, "authstorm: sessions authenticating at once")
	fs.StringVar(&c.AuthID, "authid", "", "authstorm: WAMP-CRA authid")
	fs.StringVar(&c.Secret, "secret", "", "authstorm: WAMP-CRA secret (plain, not salted)")
	fs.StringVar(&c.TicketFile, "ticket-file", "", "authstorm: log in with WAMP-Ticket, the tickets (OAuth2 access tokens) one a line in this file, handed out in turn")
	fs.StringVar(&c.ClientID, "client-id", "", "tokens: OAuth2 client (confidential, with the client_credentials grant)")
	fs.StringVar(&c.ClientSecret, "client-secret", "", "tokens: its secret (plain)")
	mint := fs.Int("mint-jwt", 0, "write this many OAuth2 access tokens for -ticket-file to stdout, signed with -jwt-key for -jwt-issuer and -realm, and exit")
	var mo load.MintOptions
	fs.StringVar(&mo.KeyFile, "jwt-key", "", "mint-jwt: the router's signing key file (oauth.key_files)")
	fs.StringVar(&mo.Issuer, "jwt-issuer", "http://127.0.0.1:8081", "mint-jwt: the router's oauth.issuer")
	jwtRoles := fs.String("jwt-roles", "user", "mint-jwt: the tokens' roles, comma-separated")
	fs.DurationVar(&mo.Lifetime, "jwt-lifetime", time.Hour, "mint-jwt: token lifetime")
	quiet := fs.Bool("q", false, "no progress messages on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the load tool's own CPU profile to this file (to make the tool leaner)")
	report := fs.String("report", "", "write the matrix report (RESULTS.md) for a bench/run-e2e.sh output directory to stdout, and exit")
	flag.Parse()
	if *mint > 0 {
		mo.N, mo.Realm, mo.Roles = *mint, c.Realm, strings.Split(*jwtRoles, ",")
		if err := load.MintTokens(mo, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wampbench:", err)
			os.Exit(1)
		}
		return
	}
	for _, p := range strings.Split(*meshPIDs, ",") {
		if p = strings.TrimSpace(p); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				fmt.Fprintln(os.Stderr, "wampbench: -mesh-pids:", err)
				os.Exit(2)
			}
			load.SetMeshPIDs(append(load.MeshPIDs(), n))
		}
	}
	for _, u := range strings.Split(*subURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.SubURLs = append(c.SubURLs, u)
		}
	}
	if *report != "" {
		if err := load.Report(*report, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wampbench:", err)
			os.Exit(1)
		}
		return
	}
	switch ser {
	case "json":
		c.Ser = proto.JSON
	case "msgpack":
		c.Ser = proto.MsgPack
	case "cbor":
		c.Ser = proto.CBOR
	default:
		fmt.Fprintf(os.Stderr, "wampbench: unknown serializer %q\n", ser)
		os.Exit(2)
	}
	if !*quiet {
		c.Log = os.Stderr
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "wampbench:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	r, err := load.Run(c)
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "wampbench:", err)
		fmt.Printf("RESULT scenario=%s target=%s error=%s\n", c.Scenario, c.Label, strings.ReplaceAll(err.Error(), " ", "_"))
		os.Exit(1)
	}
	fmt.Println(r.String())
}
