// Command edgewamp is the edgewamp WAMP router.
//
//	edgewamp run [-config FILE] [-listen ADDR] [-gateway-listen ADDR|off] [-node NAME] [-cluster-listen ADDR]
//	             [-cluster-routes URL,...] [-leaf-listen ADDR] [-leaf-remotes URL,...] [-log-level L] [-log-format F]
//	edgewamp check-config FILE
//	edgewamp version
package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/route"
)

// Set at build time: make release stamps all three (-ldflags "-X
// main.version=1.2.3 -X main.commit=... -X main.date=...").
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func main() {
	reexecAllowed = true // sysmon.go
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `edgewamp — a WAMP v2 router for the edge

Usage:
  edgewamp run [-config FILE] [-listen ADDR] [-gateway-listen ADDR|off] [-log-level LEVEL] [-log-format text|json] [-pprof ADDR]
               [-node NAME] [-cluster-listen ADDR] [-cluster-routes nats://HOST:PORT[,...]]
               [-leaf-listen ADDR] [-leaf-remotes nats://HOST:PORT[,...]]
  edgewamp check-config FILE
  edgewamp passwd [-iterations N]      hash a password for the config (reads it from stdin)
  edgewamp keygen                      make an Ed25519 key pair for cryptosign
  edgewamp oauth secret [-iterations N] make an OAuth2 client secret and its hash
  edgewamp oauth keygen [-alg EdDSA|ES256]  write an OAuth2 signing key (PEM) to stdout
  edgewamp version
  edgewamp help COMMAND                a command's usage and flags (as edgewamp COMMAND -h)

Without -config, run uses the embedded default configuration (realm "realm1",
anonymous, ws://127.0.0.1:8080/ws and RawSocket on the same port, the HTTP
gateway on http://127.0.0.1:8081).
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
		return cmdRun(args[1:], stdout, stderr)
	case "check-config":
		return cmdCheck(args[1:], stdout, stderr)
	case "passwd":
		return cmdPasswd(args[1:], os.Stdin, stdout, stderr)
	case "keygen":
		return cmdKeygen(args[1:], stdout, stderr)
	case "oauth":
		return cmdOAuth(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fs := flag.NewFlagSet("version", flag.ContinueOnError)
		if code, ok := parseFlags(fs, "edgewamp version", args[1:], stdout, stderr); !ok {
			return code
		}
		if code, ok := noArgs(fs, "version", stderr); !ok {
			return code
		}
		printVersion(stdout)
		return 0
	case "help":
		// `edgewamp help run` is `edgewamp run -h` (before, it printed
		// the general usage, without run's flags); `edgewamp help` alone,
		// or of help, the general usage.
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return run(append(slices.Clone(args[1:]), "-h"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "edgewamp: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// printVersion prints the version line, then the commit and build date:
// stamped by make release, else from the Go build information.
func printVersion(w io.Writer) {
	arch := runtime.GOARCH
	if arch == "arm" {
		arch += "v" + armVersion()
	}
	fmt.Fprintf(w, "edgewamp %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, arch)
	c, d, modified := commit, date, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.time":
				if d == "" {
					d = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if c != "" {
		if modified {
			c += " (modified)"
		}
		fmt.Fprintf(w, "  commit %s\n", c)
	}
	if d != "" {
		fmt.Fprintf(w, "  built  %s\n", d)
	}
}

// armVersion returns GOARM as the build recorded it ("7"), or "?".
func armVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" {
				return strings.TrimSuffix(strings.TrimSuffix(s.Value, ",softfloat"), ",hardfloat")
			}
		}
	}
	return "?"
}

// parseFlags parses a command's flags, fs's, from args. -h, -help and
// --help print the command's usage (use, then its flags) on stdout, as
// `edgewamp -h` prints the program's, and end it with exit status 0; a
// mistake prints the error and the usage on stderr, exit status 2. ok
// says whether the command goes on (code is then 0).
func parseFlags(fs *flag.FlagSet, use string, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", use)
		fs.PrintDefaults()
	}
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case err == nil:
		return 0, true
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(out.Bytes())
		return 0, false
	}
	stderr.Write(out.Bytes())
	return 2, false
}

// exitStatus is run's exit status for err, a configuration's refusal at
// start: 2, a usage error as the flag package's, when a flag's value is
// among its causes (-listen foo, -log-level loud), else 1 (the file's
// errors). Before, a flag's value refused exited 1 while an unknown flag
// exited 2.
func exitStatus(err error) int {
	if fe := (*flagError)(nil); errors.As(err, &fe) {
		return 2
	}
	return 1
}

// noArgs refuses the arguments left after a command's flags, for one that
// takes none.
func noArgs(fs *flag.FlagSet, cmd string, stderr io.Writer) (code int, ok bool) {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "edgewamp %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return 2, false
	}
	return 0, true
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	const use = "edgewamp check-config FILE"
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	if code, ok := parseFlags(fs, use, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: "+use)
		return 2
	}
	path := fs.Arg(0)
	if path == "" {
		// loadConfig("") is the embedded default, which check-config then
		// called ok (": ok"): a script's unset variable checked nothing.
		fmt.Fprintln(stderr, "edgewamp check-config: the file name is empty")
		return 2
	}
	cfg, err := loadConfig(path, nil)
	if err == nil {
		if err = cfg.checkStart(); err != nil {
			err = fmt.Errorf("%s: %w", path, err)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return 1
	}
	if w := cfg.Mesh.cleartextWarning(); w != "" {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	if w := cfg.Mesh.openWarning(); w != "" {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	if w := cfg.storeWarning(); w != "" {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	if w := cfg.secretFileWarning(path); w != "" {
		fmt.Fprintf(stderr, "edgewamp: warning: %s\n", w)
	}
	for _, w := range cfg.keyFileWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.writableWarnings(path) {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.cleartextWarnings(true) {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.proxyWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.broadExemptWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.exemptProxyWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.stateDirWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.stopTimeoutWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.gatewayGrantWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.prefixWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.anonymousMethodWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.decoyKeyWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	for _, w := range cfg.sampleCredentialWarnings() {
		fmt.Fprintf(stderr, "edgewamp: %s: warning: %s\n", path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return 0
}

// emptyFlagHints names the run flags refused when given an empty value
// (a unit's or a script's unset variable), each with what to do instead.
var emptyFlagHints = map[string]string{
	"config":         "the file name; leave -config out to run the embedded default",
	"listen":         "host:port; leave -listen out to use the configuration's first listener",
	"gateway-listen": "host:port, or off; leave it out to use gateway.listen",
	"node":           "the node's name; leave -node out to use mesh.node or the host name",
	"cluster-listen": "host:port; leave it out to use mesh.cluster.listen",
	"cluster-routes": "nats://host:port[,...]; leave it out to use mesh.cluster.routes",
	"leaf-listen":    "host:port; leave it out to use mesh.leaf.listen",
	"leaf-remotes":   "nats://host:port[,...]; leave it out to use mesh.leaf.remotes",
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	// The signals first: until Notify, SIGHUP's default action ends the
	// process, and a start (a mesh node's) takes some 100 ms during which
	// a certificate hook's `kill -HUP` or a reload racing a restart used
	// to kill the router.
	sigs := notifySignals()
	defer sigs.close()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "configuration file (YAML); default: the embedded default")
	listen := fs.String("listen", "", "listen address host:port, overriding the configuration's first listener")
	gwListen := fs.String("gateway-listen", "", "HTTP gateway address host:port, or off, overriding gateway.listen")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn or error (overrides the configuration)")
	logFormat := fs.String("log-format", "", "log format: text or json (overrides the configuration)")
	pprofAddr := fs.String("pprof", "", "serve Go's net/http/pprof profiles on this address (e.g. 127.0.0.1:6060); for diagnosis only")
	var mf meshFlags
	fs.StringVar(&mf.node, "node", "", "mesh: this node's name, unique in the mesh (default: the host name)")
	fs.StringVar(&mf.clusterListen, "cluster-listen", "", "mesh: listen for NATS routes from the other nodes of the cluster on host:port")
	fs.StringVar(&mf.clusterRoutes, "cluster-routes", "", "mesh: the other cluster nodes' routes, nats://host:port[,...]")
	fs.StringVar(&mf.leafListen, "leaf-listen", "", "mesh: accept edge nodes' leaf-node links on host:port (a hub)")
	fs.StringVar(&mf.leafRemotes, "leaf-remotes", "", "mesh: join a hub as an edge node, nats://host:port[,...]")
	if code, ok := parseFlags(fs, "edgewamp run [flags]", args, stdout, stderr); !ok {
		return code
	}
	if code, ok := noArgs(fs, "run", stderr); !ok {
		return code
	}
	// -config "" (a unit's or a script's unset variable) ran the embedded
	// default, the development configuration with RBAC off, in place of
	// the file meant, without a word.
	// The same for the flags that say where the router is reached and
	// which mesh it joins: `-listen ""` ran on the configuration's
	// address, `-cluster-routes ""` alone, without a word.
	// Blank counts as empty, and so does a list of nothing but commas:
	// `-cluster-routes ${PEER1},${PEER2}` with both unset gives ",",
	// which cleared the file's routes (splitList), and `-gateway-listen
	// " "` turned the gateway off (gatewayOff), without a word.
	var empty []string
	fs.Visit(func(f *flag.Flag) {
		v := f.Value.String()
		if strings.TrimSpace(v) == "" || (f.Name == "cluster-routes" || f.Name == "leaf-remotes") && len(splitList(v)) == 0 {
			empty = append(empty, f.Name)
		}
	})
	for _, name := range empty {
		if hint, ok := emptyFlagHints[name]; ok {
			fmt.Fprintf(stderr, "edgewamp: flag -%s: the value is empty (%s)\n", name, hint)
			return 2
		}
	}
	if p := listenAddrProblem(*pprofAddr); *pprofAddr != "" && p != "" {
		fmt.Fprintf(stderr, "edgewamp: flag -pprof: %q %s\n", *pprofAddr, p)
		return 2
	}
	// The flags override the file at start and at every reload.
	override := func(c *config) {
		if *logLevel != "" {
			c.Log.Level = *logLevel
			c.setByFlag("-log-level", "log", "level")
		}
		if *logFormat != "" {
			c.Log.Format = *logFormat
			c.setByFlag("-log-format", "log", "format")
		}
		if *listen != "" {
			if len(c.Listeners) == 0 {
				c.Listeners = []listenerConfig{{}}
			}
			c.Listeners[0].Address = *listen
			c.setByFlag("-listen", "listeners", 0, "address")
		}
		if *gwListen != "" {
			c.Gateway.Listen = *gwListen
			c.setByFlag("-gateway-listen", "gateway", "listen")
		}
		mf.apply(c)
	}
	cfg, err := sigs.loadConfig(*cfgPath, override)
	if errors.Is(err, errStoppedReading) {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return 0 // a stop during the start, as stopped's
	}
	if err != nil {
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return exitStatus(err)
	}
	// The mesh's options, as check-config checks them, before anything
	// starts: an error names its flag (-cluster-routes) or the file's line,
	// as the other flags' and keys' do. Before, the node's start refused
	// them after the router's first log lines, as "edgewamp stopped" with
	// an error naming neither ("edge: cluster.routes: \"foo\": want
	// nats://host:port" for -cluster-routes foo).
	if errs := cfg.meshErrs(nil); len(errs) > 0 {
		err := namedErrors(cmp.Or(*cfgPath, "embedded default"), errors.Join(errs...))
		fmt.Fprintf(stderr, "edgewamp: %v\n", err)
		return exitStatus(err)
	}
	log := newLogger(stderr, cfg.Log.Level, cfg.Log.Format)
	slog.SetDefault(log)
	if cfg.Mesh.Node != "" && !cfg.Mesh.enabled() {
		log.Warn("mesh: a node name is set, but no cluster, leaf or nats_url: the router runs alone (add -cluster-listen, -cluster-routes, -leaf-listen or -leaf-remotes to join a mesh)", "node", cfg.Mesh.Node)
	}
	if err := steadySysmon(cfg, *cfgPath, func() bool { return sigs.stopped(log) }); errors.Is(err, errStoppedStarting) {
		return 0 // logged by stopped
	} else if err != nil { // returns only if it does not re-execute
		sigs.notify() // steadySysmon ignored SIGHUP for the execve
		log.Warn("go's sysmon polls every 20 µs after each idle spell: steady sysmon unavailable", "err", err)
	}
	if w := cfg.Mesh.cleartextWarning(); w != "" {
		log.Warn(w)
	}
	if w := cfg.Mesh.openWarning(); w != "" {
		log.Warn(w)
	}
	if w := cfg.storeWarning(); w != "" {
		log.Warn(w)
	}
	cfg.secretsSaid = cfg.secretWarnings(*cfgPath) // and, when it changes, by a reload
	for _, w := range cfg.secretsSaid {
		log.Warn(w)
	}
	if os.Geteuid() == 0 {
		// The router needs no privilege (the unit and the container image
		// run it as a user of its own, without capabilities): as root, a
		// flaw in it, or in a library it links, is the machine's.
		log.Warn("running as root: the router needs no privilege; run it as a user of its own (the systemd unit runs it as edgewamp, the container image as nonroot; for a port below 1024 give that user CAP_NET_BIND_SERVICE)")
	}
	for _, w := range cfg.proxyWarnings() { // the lists apply at a restart only
		log.Warn(w)
	}
	for _, w := range cfg.broadExemptWarnings() { // likewise
		log.Warn(w)
	}
	for _, w := range cfg.exemptProxyWarnings() { // likewise
		log.Warn(w)
	}
	for _, w := range cfg.prefixWarnings() {
		log.Warn(w)
	}
	for _, w := range cfg.anonymousMethodWarnings() {
		log.Warn(w)
	}
	for _, w := range cfg.decoyKeyWarnings() { // data_dir and mesh: apply at a restart only
		log.Warn(w)
	}
	cfg.samplesSaid = map[string]bool{} // and a reload says only those it adds
	for _, w := range cfg.sampleCredentialWarnings() {
		cfg.samplesSaid[w] = true
		log.Warn(w)
	}
	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, log); err != nil {
			fmt.Fprintf(stderr, "edgewamp: -pprof: %v\n", err)
			return 1
		}
	}
	if err := serve(*cfgPath, override, cfg, sigs, log); err != nil {
		log.Error("edgewamp stopped", "err", err)
		return 1
	}
	return 0
}

// signals are the process's stop signals (SIGINT, SIGTERM) and reload
// requests (SIGHUP), each on a channel of its own: os/signal drops a
// signal whose channel is full, and on one shared channel a few SIGHUPs
// queued behind a reload in progress made a SIGTERM vanish (systemd then
// SIGKILLs the router after TimeoutStopSec). hup holds one request:
// SIGHUPs that arrive while a reload runs (or while one waits, or while
// the router starts) make one more reload after it, not one each.
type signals struct {
	stop, hup chan os.Signal
	second    sync.Once // exitOnSecondStop's watch, started once
}

func notifySignals() *signals {
	s := &signals{stop: make(chan os.Signal, 4), hup: make(chan os.Signal, 1)}
	s.notify()
	return s
}

func (s *signals) notify() {
	signal.Notify(s.stop, syscall.SIGINT, syscall.SIGTERM)
	signal.Notify(s.hup, syscall.SIGHUP)
}

func (s *signals) close() {
	signal.Stop(s.stop)
	signal.Stop(s.hup)
}

// exitOnSecondStop ends the process at the next stop signal, status 1
// (README, "Commands": a second SIGINT or SIGTERM during a stop exits at
// once). Called once the first has come; the watch starts once.
func (s *signals) exitOnSecondStop(log *slog.Logger) {
	s.second.Do(func() {
		go func() {
			sig := <-s.stop
			log.Warn("second stop signal while shutting down: exiting now, without waiting for the sessions", "signal", sig.String())
			os.Exit(1)
		}()
	})
}

// reloadUnlessStopped runs reload, a SIGHUP's, on a goroutine of its own
// and returns its error once it has ended. A stop signal that comes first
// is logged at once and returned (sig): the reload's waits for files
// being written end at it (awaitQuietConfig); the rest of it (the
// gateway's runners, up to 10 s, and the event loops' re-check of the
// sessions, up to 5 s, against loops or a router that do not answer) is
// waited for at most wait more, then left to end beside the stop
// (logged); waited is how long that took. A second stop signal meanwhile
// ends the process (exitOnSecondStop). Before, the signal loop ran the
// reload itself: a SIGTERM during a long one was neither logged nor acted
// on until it ended, and an operator's second one, sent as the first
// seemed ignored, then ended the router at once, without a drain.
func (s *signals) reloadUnlessStopped(log *slog.Logger, wait time.Duration, reload func() error) (sig os.Signal, waited time.Duration, err error) {
	done := make(chan error, 1)
	go func() { done <- reload() }()
	select {
	case err = <-done:
		return nil, 0, err
	case sig = <-s.stop:
	}
	at := time.Now()
	log.Info("stop signal during a reload: stopping once it ends, within "+wait.String()+", else without waiting for it", "signal", sig.String())
	s.exitOnSecondStop(log)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case err = <-done:
	case <-t.C:
		log.Warn("the reload has not ended " + wait.String() + " after the stop signal: stopping without waiting for it (what is left of it runs beside the stop)")
	}
	return sig, time.Since(at), err
}

// reloadStopWait is how long a stop signal that comes during a reload
// waits for it (reloadUnlessStopped): a second at most, and half the
// drain, whose time it takes (a stop stays within the drain plus 15 s of
// its signal); without a drain, no time.
func reloadStopWait(drain time.Duration) time.Duration { return min(time.Second, drain/2) }

// errStoppedReading is run's when a stop signal came while the start read
// its configuration.
var errStoppedReading = errors.New("stop signal while starting (reading the configuration): not starting")

// loadConfig is loadConfig for run's start, which a stop signal ends
// (errStoppedReading, wrapped with the signal and the file): the
// configuration may be a pipe (-config <(...), a named pipe), whose open
// waits for a writer and whose read waits for the writer's data or its
// end. The signals are the process's from run's first line (SIGHUP's
// default action would end it), so before, a SIGTERM or a Ctrl-C while
// it waited was taken and never looked at: `run -config FIFO` without a
// writer, or behind a command that had not finished, ignored every stop
// signal (systemd's stop ended in SIGKILL after TimeoutStopSec). The read
// goes on meanwhile on a goroutine of its own, left behind by a stop (the
// process exits).
func (s *signals) loadConfig(path string, override func(*config)) (*config, error) {
	type loaded struct {
		cfg *config
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		cfg, err := startConfigFile(path, override)
		done <- loaded{cfg, err}
	}()
	select {
	case l := <-done:
		if errors.Is(l.err, errReloadStopped) { // its wait for the file saw the signal first
			return nil, fmt.Errorf("%w (-config %s)", errStoppedReading, path)
		}
		return l.cfg, l.err
	case sig := <-s.stop:
		return nil, fmt.Errorf("%w (%s, -config %s)", errStoppedReading, sig, path)
	}
}

// stopped reports whether a stop signal has arrived, logging that the
// start is abandoned: serve asks between the steps of its start, so that
// a SIGTERM during a start ends it cleanly instead of waiting for it.
func (s *signals) stopped(log *slog.Logger) bool {
	select {
	case sig := <-s.stop:
		log.Info("stop signal while starting: not starting", "signal", sig.String())
		return true
	default:
		return false
	}
}

// during runs step, a step of the start that may wait (the mesh's, for
// its NATS server: up to 30 s), with a context that a stop signal ends;
// stopped reports whether one came (logged as stopped's), whatever step
// then returned. Before, a SIGTERM during the mesh's start waited for it:
// 27 s, then exit 1, with a JetStream store that kept NATS from being
// ready (TestStopDuringMeshStart).
func (s *signals) during(log *slog.Logger, what string, step func(context.Context) error) (stopped bool, err error) {
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan os.Signal, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case sig := <-s.stop:
			got <- sig
			cancel()
		case <-ctx.Done():
		}
	}()
	err = step(ctx)
	cancel()
	<-watched
	select {
	case sig := <-got:
		log.Info("stop signal while starting: not starting", "signal", sig.String(), "during", what)
		return true, err
	default:
		return false, err
	}
}

// serve runs the router until SIGINT or SIGTERM; SIGHUP reloads the
// realms, users, roles, runtime settings and TLS certificates. Under
// systemd it reports READY=1, RELOADING=1, STOPPING=1, keep-alives and
// STATUS= (watchdog.go).
func serve(cfgPath string, override func(*config), cfg *config, sigs *signals, log *slog.Logger) error {
	started := *cfg // as loaded, for what a reload changes (sizeProcs sets Loops)
	started.fileSums = cfg.startFileSums()
	// Credentials in clear text on the WAMP listeners and the gateway's
	// port (cleartext.go): said at start, and again by a reload that
	// changes what is said.
	started.cleartextSaid = cfg.cleartextWarnings(true)
	for _, w := range started.cleartextSaid {
		log.Warn(w)
	}
	sizeProcs(cfg, log)
	log.Info("go runtime", append(applyRuntime(cfg.Runtime, cfg.Mesh.enabled()).logAttrs(), "steady_sysmon", steadySysmonState())...)
	oa, err := cfg.newOAuth(log)
	if err != nil {
		return err
	}
	defer oa.close()
	rcfg, err := cfg.routeConfig(log, oa)
	if err != nil {
		return err
	}
	var revokeGW atomic.Pointer[gateway.Server] // the gateway, once built, for oa.onRevoke
	if oa != nil {
		oa.users.set(rcfg.Realms)
	}
	r, err := route.New(rcfg)
	if err != nil {
		return err
	}
	if oa != nil {
		oa.users.router.Store(r)
		// A revoked token (or login) ends the sessions that logged in with
		// it, here at once and on every other node at its next sync. A
		// client's cut-off (its tokens without a login issued up to then)
		// ends those of its sessions whose token it covers.
		// The gateway's SSE streams opened with such a token end too.
		oa.onRevoke = func(ids []string) {
			endRevokedSessions(r, ids)
			if g := revokeGW.Load(); g != nil {
				g.RevokeBearer(ids)
			}
		}
		if !cfg.Mesh.enabled() {
			if err := oa.start(cfg.DataDir); err != nil {
				return err
			}
		}
	}
	lo, certs, err := cfg.loopOptions(log)
	if err != nil {
		return err
	}
	lane := cfg.laneOptions(&lo, log)
	eng, err := loop.New(r, lo)
	if err != nil {
		return err
	}
	if sigs.stopped(log) {
		return nil
	}
	var node meshNode
	var meshCert *loop.CertFile // mesh.tls's, re-read on SIGHUP
	if cfg.Mesh.enabled() {
		var stopped bool
		stopped, err = sigs.during(log, "the mesh's start", func(ctx context.Context) error {
			node, meshCert, err = startMesh(ctx, cfg, r, log)
			return err
		})
		if stopped {
			if node != nil {
				node.Shutdown(context.Background())
			}
			return nil
		}
		if err != nil {
			return err
		}
		if oa != nil {
			// Every node of the mesh shares one state: tokens, codes,
			// revocations and one signing key ring, in a JetStream bucket.
			oa.startShared(meshOAuthStore(node))
		}
	}
	if sigs.stopped(log) {
		if node != nil {
			node.Shutdown(context.Background())
		}
		return nil
	}
	// The supervisor's verdict, for /readyz (it starts after the gateway).
	live := &health{}
	gw, gwCert, jwks, err := newGateway(cfg, r, eng, node, oa, live, log)
	if err != nil {
		if node != nil {
			node.Shutdown(context.Background())
		}
		return err
	}
	if gw == nil {
		lane = nil
	} else {
		revokeGW.Store(gw)
		if lane != nil {
			lane.gw = gw
		}
	}
	if sigs.stopped(log) {
		if node != nil {
			node.Shutdown(context.Background())
		}
		return nil
	}
	if err := eng.Start(); err != nil {
		if node != nil {
			node.Shutdown(context.Background())
		}
		return err
	}
	if gw != nil {
		err = startGateway(gw, cfg, eng, lane, log)
	}
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		eng.Shutdown(sctx)
		if node != nil {
			node.Shutdown(sctx)
		}
		cancel()
		return err
	}
	for i, a := range eng.Addrs()[:len(cfg.Listeners)] {
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

	sd := newNotifier()
	defer sd.close()
	status := &statusLine{}
	status.add(func() string { return "serving " + strconv.Itoa(r.SessionCount()) + " sessions" })
	// The mesh's state: "mesh off" when the router runs alone.
	status.add(func() string { return meshStatus(node) })
	sup := newSupervisor(sd, log, status, watchdogPeriod())
	sup.health = live
	sup.checks = append(sup.checks,
		liveness{"event loops", eng.NewLivenessProbe(sup.stall).Check},
		liveness{"router timers", r.NewTimerProbe(sup.stall).Check})
	sd.notify("READY=1", "STATUS="+status.String())
	sup.start()
	if testHookServing != nil {
		testHookServing(r, log)
	}

	stop, hup := sigs.stop, sigs.hup
	if len(hup) > 0 && len(stop) == 0 {
		log.Info("SIGHUP received while starting: reloading now")
	}
	drain := time.Duration(cfg.Shutdown.DrainTimeout)
	var sig os.Signal
	var waited time.Duration // for a reload, after the stop signal
	for sig == nil {
		// A stop that is waiting goes before a reload that is waiting.
		select {
		case sig = <-stop:
			continue
		default:
		}
		select {
		case sig = <-stop:
		case <-hup:
			sd.reloading()
			var err error
			sig, waited, err = sigs.reloadUnlessStopped(log, reloadStopWait(drain), func() error {
				return reload(cfgPath, override, &started, r, oa, certs, []*loop.CertFile{gwCert, meshCert}, jwks, gw, node != nil, log)
			})
			if err != nil {
				status.setNote("last reload refused: " + err.Error())
			} else if sig == nil {
				status.setNote("")
			}
			if sig == nil {
				sd.notify("READY=1", "STATUS="+status.String())
			}
		case <-eng.Done():
			// The event loops died under us (gnet stops its engine on an
			// error it cannot handle). Exit non-zero: the supervisor
			// restarts a router that serves again.
			sup.stop()
			sd.notify("STOPPING=1", "STATUS=event loops stopped")
			return fmt.Errorf("event loops stopped: %w", eng.Err())
		}
	}
	log.Info("shutting down", "signal", sig.String())
	go func() {
		// A SIGHUP from here on (or one waiting behind the stop) is not
		// reloaded: said once. Before, it was dropped without a line.
		if _, ok := <-hup; ok {
			log.Info("SIGHUP while shutting down: not reloaded")
		}
	}()
	// A second SIGINT or SIGTERM while the calls drain
	// (shutdown.drain_timeout) or the sessions close ends the process at
	// once.
	sigs.exitOnSecondStop(log)
	sup.stop()
	stopping := "shutting down: draining the calls in progress (up to " + drain.String() + "), then GOODBYE to " + strconv.Itoa(r.SessionCount()) + " sessions"
	if note := status.remark(); note != "" {
		stopping += "; " + note // a reload the stop came during refused something
	}
	sd.notify("STOPPING=1", "STATUS="+stopping)
	var gwDone chan error
	var gwDue time.Time // the gateway's drain's deadline
	if gw != nil {
		// The gateway stops accepting at once and its requests in
		// progress end (within the drain, 5 s at least), alongside the
		// drain; its HTTP callees and webhooks keep their sessions until
		// the drain has ended: the invocations in flight on them are
		// among what it waits for.
		// Its deadline counts from the signal, as the drain's does: a
		// wait for a reload the stop came during took some (before, the
		// gateway's 5 s began after it, and a stop took up to a second
		// past the drain plus 15 s).
		gwDone = make(chan error, 1)
		gwDue = time.Now().Add(max(gatewayDrainMin, drain) - waited)
		go func() {
			gctx, gcancel := context.WithDeadline(context.Background(), gwDue)
			defer gcancel()
			gwDone <- gw.Drain(gctx)
		}()
	}
	// The drain's time counts from the signal: a wait for a reload took
	// some (reloadStopWait: half of it at most).
	drained := stopDrain(eng, r, drain-waited, log)
	// The GOODBYEs' window (10 s from the drain's end, its count of the
	// calls left included) holds the gateway's Shutdown too (its callees,
	// webhooks and pooled sessions: 5 s at most, quick in practice), so
	// that a stop stays within the drain plus 15 s with the mesh's leave
	// (README, "Commands"; the unit's TimeoutStopSec=30s). Before, the
	// window began after that count (up to 1 s), and the OAuth2 server's
	// close (up to 1 s) came after it: the drain plus 17 s.
	// Its last second is the loops' own stop (shutdownEngine).
	// It counts from the gateway's drain's end when that comes later: the
	// gateway's requests may run 5 s whatever the drain, and with a
	// drain under 5 s the GOODBYEs, which wait for them, had less of
	// their window (6 s of 10 after a gateway request held 5 s, with a
	// 1 s drain); a stop then takes up to 5 s plus 15 s.
	goodbyeFrom := drained
	if gwDone != nil {
		if err := <-gwDone; err != nil {
			log.Warn("gateway shutdown", "err", err)
		}
		// Not past its deadline: the second Drain may take past it (the
		// calls streamed as SSE, streamedCallsGrace) stays in the window,
		// as before, so that a stop stays within the drain (5 s at least)
		// plus 15 s.
		goodbyeFrom = later(drained, earlier(time.Now(), gwDue))
	}
	ctx, cancel := context.WithDeadline(context.Background(), goodbyeFrom.Add(goodbyeWindow-loopStopGrace))
	defer cancel()
	if gwDone != nil {
		gctx, gcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := gw.Shutdown(gctx); err != nil {
			log.Warn("gateway shutdown", "err", err)
		}
		gcancel()
	}
	err = shutdownEngine(ctx, eng)
	// The mesh's leave window (5 s) holds the OAuth2 server's close (up
	// to 1 s waiting for a start on a store that does not answer).
	mctx, mcancel := context.WithTimeout(context.Background(), meshLeaveWindow)
	oa.close() // before the mesh its state lives in
	if node != nil {
		// After the sessions: their registrations are withdrawn first.
		node.Shutdown(mctx)
	}
	mcancel()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	log.Info("edgewamp stopped")
	return nil
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// The windows of a stop after the drain (README, "Commands": the drain
// plus 15 s): the sessions' GOODBYEs, from the drain's end, its last
// second for the event loops' own stop, then the mesh's leave.
const (
	gatewayDrainMin = 5 * time.Second // the gateway's requests' time, whatever the drain
	goodbyeWindow   = 10 * time.Second
	loopStopGrace   = time.Second
	meshLeaveWindow = 5 * time.Second
)

// shutdownEngine is eng.Shutdown(ctx), waited for loopStopGrace past
// ctx's end at most. Shutdown returns by ctx's end even with a wedged
// loop (f5fc03a; before, gnet's stop took 10 s of its own past it, and
// with a session open the GOODBYEs' window was 20 s), but waits up to
// 1 s past it for loops that are stopping (not wedged) and up to 2 s for
// TLS handshakes in progress: the grace keeps the window.
// The process exits after the stop, the loops with it.
func shutdownEngine(ctx context.Context, eng *loop.Engine) error {
	done := make(chan error, 1)
	go func() { done <- eng.Shutdown(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(loopStopGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return errors.New("the event loops did not stop within the GOODBYEs' window (" + goodbyeWindow.String() + ")")
	}
}

// stopDrain drains the router before its sessions get GOODBYE
// (route/drain.go): the listeners close, this node's registrations leave
// the mesh and its callees take no new calls, and the calls in progress
// may end within d (shutdown.drain_timeout; 0: no drain). It logs how the
// drain ended, and returns when it did (before the log line's count of
// the calls left, up to a second with busy loops, which the GOODBYEs'
// window holds). A second stop signal ends the process meanwhile.
func stopDrain(eng *loop.Engine, r *route.Router, d time.Duration, log *slog.Logger) time.Time {
	begin := time.Now()
	if d <= 0 {
		return begin
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := eng.Drain(ctx); err != nil {
		end := time.Now()
		pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
		left := r.DrainPending(pctx)
		pcancel()
		log.Warn("drain: its deadline passed with calls in progress: they are answered wamp.error.canceled",
			"drain_timeout", d, "in_progress", left)
		return end
	}
	end := time.Now()
	log.Info("drained: no call in progress", "took", end.Sub(begin).Round(time.Millisecond))
	return end
}

// testHookServing is nil in production builds. Builds with the
// edgewamp_testhooks tag (tests only) set it to install test-only
// behaviour (testhooks.go); no configuration reaches it.
var testHookServing func(r *route.Router, log *slog.Logger)

// reload re-reads the TLS certificates, the gateway's JWKS file (jwks,
// when gateway.bearer is set) and the configuration file, and installs
// its realms and runtime settings. A certificate pair, a key set or a
// configuration with an error is refused and the running one stays; they
// are independent (a certificate rotation is not held up by a typo in the
// file). It returns what was refused, for the status line.
func reload(path string, override func(*config), running *config, r *route.Router, oa *oauthServer, certs []*loop.CertFile, others []*loop.CertFile, jwks *jwksVerifier, gw *gateway.Server, meshOn bool, log *slog.Logger) error {
	var refused []string
	all := certs[:len(certs):len(certs)]
	for _, cf := range others { // the gateway's and the mesh's, when set
		if cf != nil {
			all = append(all, cf)
		}
	}
	// stopped: a stop signal came while a file was waited for
	// (errReloadStopped). The stop goes first: what is left is not
	// reloaded (a later wait would not see the signal: it came before
	// that wait listened for it), and that is no error.
	stopped := false
	if err := reloadCerts(all, log); err != nil {
		stopped = errors.Is(err, errReloadStopped)
		if !stopped || refusedBeside(err, errReloadStopped) { // a pair refused before the stop
			refused = append(refused, "TLS certificate")
		}
	}
	if jwks != nil && !stopped {
		changed, kids, removed, err := jwks.reloadKeys(time.Now().Add(configSettleMax))
		switch {
		case errors.Is(err, errReloadStopped):
			stopped = true
		case err != nil:
			log.Error("SIGHUP: gateway.bearer.jwks_file refused; keeping the keys in use", "file", jwks.path, "err", err)
			refused = append(refused, "gateway.bearer.jwks_file")
		case changed:
			log.Info("SIGHUP: gateway.bearer.jwks_file reloaded: tokens are verified with its keys from now on", "file", jwks.path, "kids", strings.Join(kids, ", "))
			if len(removed) > 0 {
				// A key taken out (a leaked one withdrawn): the retained
				// events published with its tokens stop speaking for
				// them, as a revoked token's do, and the SSE streams its
				// tokens opened end. Before, its tokens were refused
				// from then on, but their retained events were given to
				// every later subscriber for as long as the router ran.
				r.RevokeRetained(removed)
				if gw != nil {
					gw.RevokeBearer(removed)
				}
			}
		}
	}
	if !stopped {
		err := reloadConfig(path, override, running, r, oa, certs, gw, meshOn, log)
		if stopped = errors.Is(err, errReloadStopped); err != nil && !stopped {
			refused = append(refused, "configuration")
		}
	}
	if stopped {
		// Before, an ERROR line "configuration refused" (or "TLS
		// certificate refused") for a reload the operator's stop cut short.
		// What was refused before the stop is still returned, for the
		// status line (it returned nil: STATUS did not say it).
		log.Info("SIGHUP: a stop signal came while the reload waited for a file being written: the rest is not reloaded, and the router stops")
	}
	if len(refused) > 0 {
		return errors.New(strings.Join(refused, ", ") + " (see the log)")
	}
	return nil
}

// refusedBeside reports whether err, one error or errors joined, holds
// one that is not stop.
func refusedBeside(err, stop error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !errors.Is(e, stop) {
				return true
			}
		}
		return false
	}
	return !errors.Is(err, stop)
}

// reloadConfig re-reads the configuration file and installs its realms,
// their HTTP bridge access, the gateway's API and signing keys and routes
// and the runtime settings. running is the configuration the router
// started with (what runs of the sections a reload does not apply).
// meshOn says whether this process runs a mesh node (which a reload
// neither starts nor stops).
func reloadConfig(path string, override func(*config), running *config, r *route.Router, oa *oauthServer, certs []*loop.CertFile, gw *gateway.Server, meshOn bool, log *slog.Logger) error {
	if path == "" {
		log.Info("SIGHUP: nothing to reload (running on the embedded default configuration)")
		return nil
	}
	cfg, err := reloadConfigFile(path, override)
	if errors.Is(err, errReloadStopped) {
		return err // reload says so
	}
	if errors.Is(err, errPipeReread) {
		log.Warn("SIGHUP: -config "+path+" "+errPipeReread.Error()+": the configuration is not reloaded (restart to change it; TLS certificates are re-read)", "config", path)
		return nil
	}
	if err != nil {
		log.Error("SIGHUP: configuration refused; keeping the running one", "err", err)
		return err
	}
	realms, err := cfg.realmConfigsWith(oa)
	var gwUpdate *gateway.Prepared
	if err == nil && gw != nil {
		// The gateway's keys and routes are checked and built before
		// anything is installed. loadConfig checked them already, with
		// the file's line numbers, unless the file turns the gateway off
		// (the running one takes the file's keys and routes all the
		// same); Prepare checks them against what only the running
		// gateway knows too: the handlers mounted on it (the OAuth2
		// server's).
		gwo := cfg.gatewayOptions(log)
		gwUpdate, err = gw.Prepare(gateway.Update{Realms: cfg.realmAccess(), APIKeys: gwo.APIKeys, SigningKeys: gwo.SigningKeys, Routes: gwo.Routes,
			Callees: gwo.Callees, Webhooks: gwo.Webhooks})
	}
	if err == nil {
		err = oa.reload(cfg, realms)
	}
	if err == nil {
		err = r.Reload(realms)
	}
	if err != nil {
		if gwUpdate != nil {
			gwUpdate.Discard()
		}
		log.Error("SIGHUP: configuration refused; keeping the running one", "err", err)
		return err
	}
	var routes []any
	if gw != nil {
		// The realms' bridge access, the keys and the routes as one: a
		// request is routed and judged by the old configuration or the
		// new one, never a mix; the SSE streams of removed or changed keys
		// end, and those of routes whose auth their credential no longer
		// passes. Then the HTTP callees and webhooks: those removed or
		// changed are unregistered and unsubscribed before it returns,
		// those added or changed start. Before the log line below: a
		// request that starts after it sees only the new configuration.
		routes = gw.Apply(gwUpdate).LogAttrs()
	}
	// auto settings follow the mesh that runs, not one the file now asks
	// for.
	rt := applyRuntime(cfg.Runtime, meshOn)
	if cfg.Mesh.enabled() != meshOn {
		state := "runs no mesh node"
		if meshOn {
			state = "keeps its mesh node"
		}
		log.Warn("SIGHUP: mesh: is added or removed; that needs a restart, and until then the router " + state)
	}
	if oa == nil && cfg.oauthEnabled() {
		// The OAuth2 server starts with the router (its store, its keys,
		// its endpoints on the gateway): a router started without it
		// takes no access tokens until a restart. The realms' users,
		// roles and the rest apply now.
		log.Warn("SIGHUP: oauth: is added (OAuth2 turned on); that needs a restart, and until then the router issues and takes no access tokens",
			"realms", strings.Join(cfg.oauthRealmNames(), ", "))
	}
	if changed := restartOnlyChanges(running, cfg); len(changed) > 0 {
		log.Warn("SIGHUP: settings a reload does not apply were changed; they need a restart, and until then the router keeps the running ones",
			"changed", strings.Join(changed, ", "))
	}
	if changed := changedStartFiles(running); len(changed) > 0 {
		log.Warn("SIGHUP: files read at start only were changed; they need a restart, and until then the router keeps what it read from them",
			"files", strings.Join(changed, ", "))
	}
	if gone := goneStartFiles(running); len(gone) > 0 {
		log.Warn("SIGHUP: files read at start only cannot be read now; the router keeps what it read from them, but a restart fails until they can",
			"files", strings.Join(gone, ", "))
	}
	names := make([]string, 0, len(realms))
	for _, rc := range realms {
		names = append(names, rc.Name)
	}
	attrs := append([]any{"realms", names}, routes...)
	attrs = append(attrs, "note", "realms, users, roles, their HTTP bridge access, OAuth2 clients, the gateway's API and signing keys, routes, callees and webhooks, runtime and TLS certificates apply now; "+restartOnlyNote+" changes need a restart")
	// The warnings before the line that says the reload is done, so that
	// whoever waits for that line (a test, an operator's script) has them
	// (they came after it, and a test reading the log as it came saw the
	// line without them). The realms and the gateway's API keys apply
	// now, the listeners, the gateway's address, TLS and bearer at a
	// restart.
	eff := *cfg
	eff.Listeners = running.Listeners
	eff.Gateway.Listen, eff.Gateway.TLS, eff.Gateway.Bearer = running.Gateway.Listen, running.Gateway.TLS, running.Gateway.Bearer
	if said := eff.cleartextWarnings(oa != nil); !slices.Equal(said, running.cleartextSaid) {
		for _, w := range said {
			log.Warn("SIGHUP: " + w)
		}
		running.cleartextSaid = said
	}
	// Files every local user may read or write: the file itself (its mode may have
	// changed, and its secrets with it) and the private keys the router
	// uses, which are the running ones (the TLS paths, mesh: and the
	// OAuth2 keys apply at a restart). Before, only the start and
	// check-config said it: a file made 0644 by a configuration tool and
	// reloaded went unsaid.
	eff.Mesh = running.Mesh
	eff.OAuth.KeyFiles = running.OAuth.KeyFiles
	if said := eff.secretWarnings(path); !slices.Equal(said, running.secretsSaid) {
		for _, w := range said {
			log.Warn("SIGHUP: " + w)
		}
		running.secretsSaid = said
	}
	// Realms and their methods apply now: a reload that closes a realm
	// to the anonymous clients its file says it takes says so, as the
	// start does (before, only check-config and the start said it).
	for _, w := range cfg.anonymousMethodWarnings() {
		log.Warn("SIGHUP: " + w)
	}
	// Once a process each (before, every reload said every one again).
	for _, w := range cfg.sampleCredentialWarnings() {
		if !running.samplesSaid[w] {
			running.samplesSaid[w] = true
			log.Warn("SIGHUP: " + w)
		}
	}
	warnMovedCerts(cfg, certs, log)
	log.Info("SIGHUP: configuration reloaded", append(attrs, rt.logAttrs()...)...)
	return nil
}

// restartOnlyNote names what a reload does not apply, for its log line.
const restartOnlyNote = "log, loops, listeners, websocket, limits, keepalive, rpc, shutdown, tuning, data_dir, mesh:, gateway (address, event_loop, hosts, TLS files, call timeouts, errors, api_key_header, signature_max_skew, bearer but its JWKS file's keys, CORS, limits) and oauth: (issuer, algorithm, keys, rotation, sync, cache; a realm's oauth: block added to a router started without OAuth2)"

// restartOnlyChanges names the sections of next, a reloaded file, that
// differ from running's, the configuration the router started with, among
// those a reload does not apply: they need a restart. Before, a reload
// that changed one of them (rpc.max_call_timeout, say) logged
// "configuration reloaded" and the router went on with the old values,
// with no word of it. A mesh: added or removed, and TLS files moved, have
// warnings of their own.
func restartOnlyChanges(running, next *config) []string {
	var changed []string
	diff := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			changed = append(changed, name)
		}
	}
	diff("log", running.Log, next.Log)
	diff("loops", running.Loops, next.Loops)
	type listener struct {
		addr, transport string
		maxConns        int
		tls             bool
		trustedProxies  string // as parsed: 127.0.0.1 is 127.0.0.1/32
	}
	listeners := func(c *config) (ls []listener) {
		for _, l := range c.Listeners {
			ls = append(ls, listener{l.Address, orDefault(l.Transport, "both"), l.MaxConnections, l.TLS != nil, fmt.Sprint(networks(l.TrustedProxies))})
		}
		return ls
	}
	diff("listeners", listeners(running), listeners(next))
	diff("websocket", running.WebSocket, next.WebSocket)
	diff("limits", running.Limits, next.Limits)
	diff("keepalive", running.Keepalive, next.Keepalive)
	diff("rpc", running.RPC, next.RPC)
	diff("shutdown", running.Shutdown, next.Shutdown)
	diff("tuning", running.Tuning, next.Tuning)
	diff("data_dir", running.DataDir, next.DataDir)
	if running.Mesh.enabled() && next.Mesh.enabled() {
		diff("mesh", running.Mesh, next.Mesh)
	}
	// The gateway's keys, routes, callees and webhooks apply.
	gw := func(c *config) gatewayConfig {
		g := c.Gateway
		g.APIKeys, g.SigningKeys, g.Routes, g.Callees, g.Webhooks = nil, nil, nil, nil, nil
		g.TrustedProxies = []string{fmt.Sprint(networks(g.TrustedProxies))} // as parsed: 127.0.0.1 is 127.0.0.1/32
		return g
	}
	diff("gateway", gw(running), gw(next))
	diff("oauth", running.OAuth, next.OAuth)
	return changed
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// newGateway builds the HTTP gateway unless the configuration disables
// it; nil when disabled. The OAuth2 server's endpoints, when it runs, are
// mounted on it, and its access tokens are the gateway's bearer tokens
// (with gateway.bearer's JWKS file as a second issuer, if set). live is
// the supervisor's verdict on the event loops, which /readyz answers with.
func newGateway(cfg *config, r *route.Router, eng *loop.Engine, node meshNode, oa *oauthServer, live *health, log *slog.Logger) (*gateway.Server, *loop.CertFile, *jwksVerifier, error) {
	if cfg.gatewayOff() {
		if oa != nil {
			log.Warn("oauth: the gateway is off, so the authorization server's HTTP endpoints are not served (WAMP ticket logins with its tokens still work)")
		}
		log.Info("HTTP gateway off")
		return nil, nil, nil, nil
	}
	o := cfg.gatewayOptions(log)
	o.Router = r
	o.Stats = routerStats{r: r, eng: eng, mesh: func() *gateway.MeshStats { return meshMetrics(node, r) }}
	o.Ready = func() error {
		select {
		case <-eng.Done():
			return errors.New("the event loops stopped")
		default:
		}
		// The supervisor's last liveness check (watchdog.go): a wedged
		// loop, a ticker or timer goroutine that stopped. Before, /readyz
		// answered ready while the supervisor told systemd NOT
		// RESPONDING.
		if err := live.err(); err != nil {
			return err
		}
		if rn, ok := node.(interface{ Ready() bool }); ok && !rn.Ready() {
			return errors.New("the mesh is not connected")
		}
		return nil
	}
	var verifiers []gateway.BearerVerifier
	if oa != nil {
		verifiers = append(verifiers, oauthBearer{oa})
		o.Mount = oauthMounts(oa)
		if u, err := url.Parse(oa.opts.Issuer); err == nil && u.Hostname() != "" {
			o.KnownHosts = append(o.KnownHosts, u.Hostname())
		}
	}
	var cert *loop.CertFile
	if t := cfg.Gateway.TLS; t != nil {
		// Re-read on SIGHUP with the listeners' certificates (tlsreload.go).
		var err error
		if cert, err = loop.LoadCertFile(t.Cert, t.Key); err != nil {
			return nil, nil, nil, fmt.Errorf("gateway: %w", err)
		}
		if cert.Expired() {
			// As a listener's and mesh.tls's (before, not a word: every
			// HTTPS client refused the gateway).
			log.Warn("gateway.tls: the certificate is not valid now; clients will refuse it", "cert", t.Cert,
				"not_before", cert.Certificate().Leaf.NotBefore, "not_after", cert.Certificate().Leaf.NotAfter)
		}
		o.TLS = cert.TLSConfig()
	}
	var jwks *jwksVerifier // re-read on SIGHUP (reload)
	if b := cfg.Gateway.Bearer; b != nil {
		v, err := newJWKSVerifier(b)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("gateway.bearer: %w", err)
		}
		jwks = v
		if oa != nil {
			v.ownIssuer = oa.opts.Issuer
		}
		verifiers = append(verifiers, v)
		if bridged := bridgedRealms(o.Realms); b.Audience == "" && bridged > 1 {
			log.Warn("gateway.bearer: without an audience, an access token of the issuer that names no realm (aud wamp:<realm>) is accepted on every realm the bridge serves; set gateway.bearer.audience, or have the issuer bind tokens to a realm", "realms", bridged)
		}
	}
	switch len(verifiers) {
	case 1:
		o.Bearer = verifiers[0]
	case 2:
		o.Bearer = bearerChain(verifiers)
	}
	// A route of type bearer without a verifier for its realm is refused
	// with the file (validateBearerRoutes).
	gw, err := gateway.New(o)
	return gw, cert, jwks, err
}

// startGateway starts a gateway newGateway built, once the event loops
// run: on the loops' HTTP lane when lane is set, else on its own listener.
func startGateway(gw *gateway.Server, cfg *config, eng *loop.Engine, lane *laneAdapter, log *slog.Logger) error {
	var err error
	if lane != nil {
		addrs := eng.Addrs()
		err = gw.StartLane(addrs[len(addrs)-1]) // the lane's listener is the last (laneOptions)
	} else {
		err = gw.Start()
	}
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.Gateway.TLS != nil {
		scheme = "https"
	}
	o := &cfg.Gateway
	log.Info("gateway listening", "address", gw.Addr().String(), "url", scheme+"://"+gw.Addr().String(),
		"event_loop", lane != nil, "routes", len(o.Routes), "callees", len(o.Callees), "webhooks", len(o.Webhooks))
	return nil
}

// sizeProcs gives the Go scheduler one processor more than there are event
// loops when the HTTP gateway runs (unless GOMAXPROCS is set). An event
// loop waits in epoll_wait as a blocking system call and keeps its
// processor meanwhile; with as many processors as loops, the gateway's
// goroutines then wait for the runtime to take a processor back from a
// waiting loop (tens of µs, several times per request). Measured with
// make bench-e2e's gateway scenario on a router pinned to one CPU (one
// loop): GOMAXPROCS 2 instead of 1 gave ~10-50 % more requests/s and a
// lower p50, and no change to WAMP RPC (see bench/RESULTS.md).
func sizeProcs(cfg *config, log *slog.Logger) {
	loops := cfg.loops()
	cfg.Loops = loops
	if cfg.gatewayOff() || os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) > loops {
		return
	}
	runtime.GOMAXPROCS(loops + 1)
	log.Debug("GOMAXPROCS raised for the HTTP gateway", "loops", loops, "gomaxprocs", loops+1)
}
