// Command edgewamp is the edgewamp WAMP router.
//
//	edgewamp run [-config FILE] [-listen ADDR] [-node NAME] [-cluster-listen ADDR] [-cluster-routes URL,...]
//	             [-leaf-listen ADDR] [-leaf-remotes URL,...] [-log-level L] [-log-format F]
//	edgewamp check-config FILE
//	edgewamp version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `edgewamp — a WAMP v2 router for the edge

Usage:
  edgewamp run [-config FILE] [-listen ADDR] [-log-level LEVEL] [-log-format text|json]
               [-node NAME] [-cluster-listen ADDR] [-cluster-routes nats://HOST:PORT[,...]]
               [-leaf-listen ADDR] [-leaf-remotes nats://HOST:PORT[,...]]
  edgewamp check-config FILE
  edgewamp passwd [-iterations N]      hash a password for the config (reads it from stdin)
  edgewamp keygen                      make an Ed25519 key pair for cryptosign
  edgewamp version

Without -config, run uses the embedded default configuration (realm "realm1",
anonymous, ws://127.0.0.1:8080/ws and RawSocket on the same port).
The mesh flags join routers into one (see README, "Mesh"): e.g. three
nodes of a site, each with -cluster-listen and the others' -cluster-routes.
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check-config":
		return cmdCheck(args[1:], stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], os.Stdin, stdout, stderr)
	case "keygen":
		return cmdKeygen(stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintf(stdout, "edgewamp %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" || s.Key == "vcs.time" {
					fmt.Fprintf(stdout, "  %s %s\n", s.Key, s.Value)
				}
			}
		}
		return 0
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "edgewamp: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: edgewamp check-config FILE")
		return 2
	}
	if _, err := loadConfig(args[0]); err != nil {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", args[0])
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "configuration file (YAML); default: the embedded default")
	listen := fs.String("listen", "", "listen address host:port, overriding the configuration's first listener")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error (overrides the configuration)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides the configuration)")
	pprofAddr := fs.String("pprof", "", "serve Go's net/http/pprof profiles on this address (e.g. 127.0.0.1:6060); for diagnosis only")
	var mf meshFlags
	fs.StringVar(&mf.node, "node", "", "mesh: this node's name, unique in the mesh (default: the host name)")
	fs.StringVar(&mf.clusterListen, "cluster-listen", "", "mesh: listen for NATS routes from the other nodes of the cluster on host:port")
	fs.StringVar(&mf.clusterRoutes, "cluster-routes", "", "mesh: the other cluster nodes' routes, nats://host:port[,...]")
	fs.StringVar(&mf.leafListen, "leaf-listen", "", "mesh: accept edge nodes' leaf-node links on host:port (a hub)")
	fs.StringVar(&mf.leafRemotes, "leaf-remotes", "", "mesh: join a hub as an edge node, nats://host:port[,...]")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgewamp run: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return 1
	}
	if *logLevel != "" {
		cfg.Log.Level = *logLevel
	}
	if *logFormat != "" {
		cfg.Log.Format = *logFormat
	}
	if *listen != "" {
		cfg.Listeners[0].Address = *listen
	}
	mf.apply(&cfg.Mesh)
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return 1
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	slog.SetDefault(log)
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			fmt.Fprintf(stderr, "edgewamp: -pprof: %v\n", err)
			return 1
		}
	}
	if err := serve(*cfgPath, cfg, log); err != nil {
		log.Error("edgewamp stopped", "err", err)
		return 1
	}
	return 0
}

// serve runs the router until SIGINT or SIGTERM; SIGHUP reloads the
// realms, users and roles from cfgPath.
func serve(cfgPath string, cfg *config, log *slog.Logger) error {
	rcfg, err := cfg.routeConfig(log)
	if err != nil {
		return err
	}
	r, err := route.New(rcfg)
	if err != nil {
		return err
	}
	lo, err := cfg.loopOptions(log)
	if err != nil {
		return err
	}
	eng, err := loop.New(r, lo)
	if err != nil {
		return err
	}
	var node meshNode
	if cfg.Mesh.enabled() {
		if node, err = startMesh(cfg, r, log); err != nil {
			return err
		}
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := eng.Start(); err != nil {
		if node != nil {
			node.Shutdown(context.Background())
		}
		return err
	}
	for i, a := range eng.Addrs() {
		l := cfg.Listeners[i]
		scheme := "ws"
		if l.TLS != nil {
			scheme = "wss"
		}
		log.Info("listening", "address", a.String(), "transport", orDefault(l.Transport, "both"),
			"websocket", scheme+"://"+a.String()+orDefault(cfg.WebSocket.Path, "/ws"), "tls", l.TLS != nil)
	}
	realms := make([]string, 0, len(cfg.Realms))
	for _, rc := range cfg.Realms {
		realms = append(realms, rc.Name)
	}
	log.Info("edgewamp started", "version", version, "loops", cfg.loops(), "realms", realms)
	sdNotify("READY=1")

	var sig os.Signal
	for sig == nil {
		select {
		case s := <-sigs:
			if s != syscall.SIGHUP {
				sig = s
				break
			}
			reload(cfgPath, cfg, r, log)
		case <-eng.Done():
			// The event loops died under us (gnet stops its engine on an
			// error it cannot handle). Exit non-zero: the supervisor
			// restarts a router that serves again.
			sdNotify("STOPPING=1")
			return fmt.Errorf("event loops stopped: %w", eng.Err())
		}
	}
	log.Info("shutting down", "signal", sig.String())
	sdNotify("STOPPING=1")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = eng.Shutdown(ctx)
	if node != nil {
		// After the sessions: their registrations are withdrawn first.
		mctx, mcancel := context.WithTimeout(context.Background(), 5*time.Second)
		node.Shutdown(mctx)
		mcancel()
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("edgewamp stopped")
	return nil
}

// reload re-reads the configuration file and installs its realms. A
// configuration with an error is refused and the running one stays.
func reload(path string, running *config, r *route.Router, log *slog.Logger) {
	if path == "" {
		log.Info("SIGHUP: nothing to reload (running on the embedded default configuration)")
		return
	}
	cfg, err := loadConfig(path)
	if err != nil {
		log.Error("SIGHUP: configuration refused; keeping the running one", "err", err)
		return
	}
	realms, err := cfg.realmConfigs()
	if err == nil {
		err = r.Reload(realms)
	}
	if err != nil {
		log.Error("SIGHUP: configuration refused; keeping the running one", "err", err)
		return
	}
	names := make([]string, 0, len(realms))
	for _, rc := range realms {
		names = append(names, rc.Name)
	}
	log.Info("SIGHUP: configuration reloaded", "realms", names,
		"note", "realms, users and roles apply now; listener, limit and log changes need a restart")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
