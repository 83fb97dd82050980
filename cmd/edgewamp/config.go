package main

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgewamp/edgewamp/gateway"
	"github.com/edgewamp/edgewamp/loop"
	"github.com/edgewamp/edgewamp/proto"
	"github.com/edgewamp/edgewamp/route"
)

//go:embed default.yaml
var defaultConfig []byte

// config is the YAML configuration file. Decoding is strict: unknown keys
// and values of the wrong type are errors that name the line.
type config struct {
	Log       logConfig        `yaml:"log"`
	Loops     int              `yaml:"loops"`
	Listeners []listenerConfig `yaml:"listeners"`
	WebSocket wsConfig         `yaml:"websocket"`
	Limits    limitsConfig     `yaml:"limits"`
	Keepalive keepaliveConfig  `yaml:"keepalive"`
	RPC       rpcConfig        `yaml:"rpc"`
	Tuning    tuningConfig     `yaml:"tuning"`
	Realms    []realmConfig    `yaml:"realms"`
	Mesh      meshConfig       `yaml:"mesh"`
	Runtime   runtimeConfig    `yaml:"runtime"`
	Shutdown  shutdownConfig   `yaml:"shutdown"`
	// DataDir holds state that must survive a restart (oauth/: tokens,
	// codes, generated signing keys). Empty: state is in memory.
	DataDir string        `yaml:"data_dir"`
	OAuth   oauthConfig   `yaml:"oauth"`
	Gateway gatewayConfig `yaml:"gateway"`

	root *yaml.Node // for line numbers in validation errors
	// flags names the command-line flag that set a key (by its path, as
	// pathKey writes it), so that an error in its value names the flag.
	flags map[string]string
	// cleartextSaid is what the running router said of credentials in
	// clear text (cleartextWarnings), at start or at the last reload that
	// changed it.
	cleartextSaid []string
	// secretsSaid is what it said of files every local user may read
	// (secretWarnings), likewise.
	secretsSaid []string
	// samplesSaid is the published sample credentials it warned of
	// (sampleCredentialWarnings), at start or by a reload: each once a
	// process.
	samplesSaid map[string]bool
	// fileSums is what the running router read of its startFiles at
	// start, for the reload's warning when they change (changedStartFiles).
	fileSums map[string][32]byte
}

// setByFlag records that flag set the key at path.
func (c *config) setByFlag(flag string, path ...any) {
	if c.flags == nil {
		c.flags = map[string]string{}
	}
	c.flags[pathKey(path...)] = flag
}

func pathKey(path ...any) string {
	var b strings.Builder
	for _, p := range path {
		fmt.Fprint(&b, "/", p)
	}
	return b.String()
}

// flagError is a validation error in a value a command-line flag gave:
// it names the flag, not a line of the file.
type flagError struct{ msg string }

func (e *flagError) Error() string { return e.msg }

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type listenerConfig struct {
	Address        string     `yaml:"address"`
	Transport      string     `yaml:"transport"`
	MaxConnections int        `yaml:"max_connections"`
	TLS            *tlsConfig `yaml:"tls"`
	// TrustedProxies are the reverse proxies in front of the listener
	// (addresses or networks) whose X-Forwarded-For or Forwarded names the
	// client of a WebSocket upgrade (loop.Listener.TrustedProxies).
	TrustedProxies []string `yaml:"trusted_proxies"`
}

type tlsConfig struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

type wsConfig struct {
	Path           string   `yaml:"path"`
	HealthPath     string   `yaml:"health_path"`
	AllowedOrigins []string `yaml:"allowed_origins"`
}

type limitsConfig struct {
	MaxMessage       size     `yaml:"max_message"`
	MaxInboundTotal  size     `yaml:"max_inbound_total"`
	MaxOutboundTotal size     `yaml:"max_outbound_total"`
	RetainedBytes    size     `yaml:"retained_bytes"`
	MaxHandshake     size     `yaml:"max_handshake"`
	HandshakeTimeout duration `yaml:"handshake_timeout"`
	MaxTLSHandshakes int      `yaml:"max_tls_handshakes"`
	HelloTimeout     duration `yaml:"hello_timeout"`
	IdleTimeout      duration `yaml:"idle_timeout"`
	HighWater        size     `yaml:"high_water"`
	HardLimit        size     `yaml:"hard_limit"`
	CallsInFlight    int      `yaml:"calls_in_flight"`
	Registrations    int      `yaml:"registrations"`
	Subscriptions    int      `yaml:"subscriptions"`

	WildcardRegistrations      int `yaml:"wildcard_registrations"`
	WildcardSubscriptions      int `yaml:"wildcard_subscriptions"`
	RealmWildcardRegistrations int `yaml:"realm_wildcard_registrations"`
	RealmWildcardSubscriptions int `yaml:"realm_wildcard_subscriptions"`

	// 0: no per-address bound (which loop.Options spells negative).
	MaxTLSHandshakesPerAddress int `yaml:"max_tls_handshakes_per_address"`
	MaxConnectionsPerAddress   int `yaml:"max_connections_per_address"`

	// One publisher's share of a realm's retained events (route.Config's
	// MaxRetainedPerPublisher, MaxRetainedBytesPerPublisher); 0: a
	// quarter of the realm's.
	RetainedEventsPerPublisher int  `yaml:"retained_events_per_publisher"`
	RetainedBytesPerPublisher  size `yaml:"retained_bytes_per_publisher"`

	// All sessions' testaments (route.Config.MaxTestamentBytes); 0: 64 MiB.
	TestamentBytes size `yaml:"testament_bytes"`

	// What all logins in progress hold (route.Config.MaxLoginBytes); 0:
	// 64 MiB.
	LoginBytes size `yaml:"login_bytes"`

	// All sessions' subscriptions (route.Config.MaxSubscriptionBytes); 0:
	// 1 GiB.
	SubscriptionBytes size `yaml:"subscription_bytes"`

	// All sessions' registrations (route.Config.MaxRegistrationBytes); 0:
	// 1 GiB.
	RegistrationBytes size `yaml:"registration_bytes"`

	// All sessions' calls in flight (route.Config.MaxCallsTotal); 0:
	// route.DefaultCallsTotal.
	CallsInFlightTotal int `yaml:"calls_in_flight_total"`

	AuthFailures authFailuresConfig `yaml:"auth_failures"`
}

// authFailuresConfig is the brute-force limiter (route.AuthLimits).
type authFailuresConfig struct {
	DelayAfter        int      `yaml:"delay_after"`
	BlockAfter        int      `yaml:"block_after"`
	AddressBlockAfter int      `yaml:"address_block_after"`
	Window            duration `yaml:"window"`
	Lockout           duration `yaml:"lockout"`
	MaxOpenChallenges int      `yaml:"max_open_challenges"`
	Exempt            []string `yaml:"exempt"`
}

type keepaliveConfig struct {
	Interval duration `yaml:"interval"`
	Timeout  duration `yaml:"timeout"`
	// RawSocketPings: proven (a RawSocket client is pinged once it has
	// sent a PING or PONG itself) or always.
	RawSocketPings string `yaml:"rawsocket_pings"`
}

// shutdownConfig is what a stop (SIGTERM, SIGINT) does before the
// sessions get GOODBYE.
type shutdownConfig struct {
	// DrainTimeout bounds the drain (route/drain.go): this node's callees
	// take no new calls, its registrations leave the mesh, and the calls
	// in progress may end within it. 0: no drain.
	DrainTimeout duration `yaml:"drain_timeout"`
}

// maxDrainTimeout bounds shutdown.drain_timeout: a stop that waits longer
// is a service manager's SIGKILL waiting to happen.
const maxDrainTimeout = 10 * time.Minute

type rpcConfig struct {
	CallTimeout    duration `yaml:"call_timeout"`
	MaxCallTimeout duration `yaml:"max_call_timeout"`
}

type tuningConfig struct {
	Flush string `yaml:"flush"`
	// IOUring is the send path: auto (io_uring where the system has a
	// usable one, else write(2)), on (refuse to start without it), off.
	IOUring string `yaml:"io_uring"`
	// Park is where an idle event loop waits: auto (in Go's netpoller
	// when the mesh runs, in epoll_wait otherwise), on (Go's netpoller),
	// off (epoll_wait). See loop/park.go.
	Park string `yaml:"park"`
	// SteadySysmon keeps the Go runtime's sysmon out of deep sleep: auto
	// (with the mesh), on, off. See sysmon.go.
	SteadySysmon string `yaml:"steady_sysmon"`
}

// withMesh resolves a tuning key of auto, on or off (validated), where
// auto means on when the node runs the mesh.
func (c *config) withMesh(v string) bool {
	return v == "on" || v != "off" && c.Mesh.enabled()
}

type realmConfig struct {
	Name          string       `yaml:"name"`
	Anonymous     *bool        `yaml:"anonymous"`
	AnonymousRole string       `yaml:"anonymous_role"`
	URICheck      string       `yaml:"uri_check"`
	Security      bool         `yaml:"security"`
	AuthMethods   []string     `yaml:"authmethods"`
	Users         []userConfig `yaml:"users"`
	Roles         []roleConfig `yaml:"roles"`
	// OAuth turns on the OAuth2 server for the realm: its clients, grants
	// and lifetimes; access tokens are also WAMP tickets.
	OAuth *realmOAuthConfig `yaml:"oauth"`
	// HTTPBridge serves the gateway's /wamp/{realm}/... endpoints for
	// this realm (default true; with security only to roles with
	// http_bridge).
	HTTPBridge *bool `yaml:"http_bridge"`
}

type userConfig struct {
	AuthID         string   `yaml:"authid"`
	Role           string   `yaml:"role"`
	Roles          []string `yaml:"roles"`
	Password       string   `yaml:"password"`
	PasswordEnv    string   `yaml:"password_env"`
	Secret         string   `yaml:"secret"`
	SecretEnv      string   `yaml:"secret_env"`
	CryptosignKeys []string `yaml:"cryptosign_keys"`
}

type roleConfig struct {
	Name        string             `yaml:"name"`
	Permissions []permissionConfig `yaml:"permissions"`
	// HTTPBridge grants the role the gateway's bridge endpoints on a realm
	// with security.
	HTTPBridge bool `yaml:"http_bridge"`
}

type permissionConfig struct {
	URI      string   `yaml:"uri"`
	Match    string   `yaml:"match"`
	Allow    []string `yaml:"allow"`
	Disclose []string `yaml:"disclose"`
}

// duration is a time.Duration written as "10s", "1m30s", at most
// maxDuration.
type duration time.Duration

// maxDuration bounds every duration of the configuration: 10 years, far
// past any timeout or lifetime that means something. time.ParseDuration
// takes up to 2562047h, and the router and the token store add a
// duration to the clock in unix nanoseconds, which wraps past the year
// 2262: with 2500000h ("practically never") a HELLO timeout aborted the
// sessions, rpc.max_call_timeout timed every call out and a refresh token
// expired at once (route and oauth now saturate too).
const maxDuration = 10 * 365 * 24 * time.Hour

// keyedError is a duration's or a size's refusal; decodeStrict names its
// key (before, a size's named only its line: `line 3: "10mb" is not a
// size`, where a duration's said `gateway.call_timeout: "10" is not a
// duration`).
type keyedError struct {
	line  int
	value string
	msg   string
}

func (e *keyedError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// typeError is e as yaml's TypeError, which yaml gathers with the file's
// other errors and decodes on past, where any other error of an
// UnmarshalYAML ended the decoding: check-config showed the first wrong
// duration or size alone, hiding every later unknown key and wrong value.
// cleanYAMLError names its key (e.msg starts with the quoted value).
func (e *keyedError) typeError() error {
	return &yaml.TypeError{Errors: []string{e.Error()}}
}

// notScalarError is yaml's own wrong-type error for the list or mapping n
// where a T (a duration, a size) goes, which cleanYAMLError rewrites to
// name its key (typeError) and yaml gathers with the file's other errors.
// Before, such a value said `line 4: want a size like "16MiB"`, no key,
// and ended the decoding.
func notScalarError[T any](n *yaml.Node) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: cannot unmarshal %s into %s", n.Line, n.ShortTag(), reflect.TypeFor[T]())}}
}

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return notScalarError[duration](n)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return (&keyedError{n.Line, n.Value, fmt.Sprintf("%q is not a duration (like \"10s\" or \"1m30s\")", n.Value)}).typeError()
	}
	if v > maxDuration {
		return (&keyedError{n.Line, n.Value, fmt.Sprintf("%q is too long: a duration is at most %s (10 years)", n.Value, strings.TrimSuffix(maxDuration.String(), "0m0s"))}).typeError()
	}
	*d = duration(v)
	return nil
}

// size is a byte count written as 1024, "8KiB", "16MiB", "1GiB", "4MB".
type size int

func (s *size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return notScalarError[size](n)
	}
	v, err := parseSize(n.Value)
	if err != nil {
		return (&keyedError{n.Line, n.Value, err.Error()}).typeError()
	}
	*s = size(v)
	return nil
}

func parseSize(s string) (int, error) {
	// The unit, whatever its case: the ones of 1000 (KB, MB, GB) and of
	// 1024 (KiB, MiB, GiB; Kubernetes' Ki, Mi, Gi). Before, only these
	// spellings were taken, and `10mb` or `1.5MiB` were refused as not a
	// size without saying which were.
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"ki", 1 << 10}, {"mi", 1 << 20}, {"gi", 1 << 30},
		{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000}, {"b", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	// K, M or G alone is 1000s to some programs, 1024s to others (docker's
	// 10m, Kubernetes' 10M): refused, naming both.
	if mult == 1 && t != "" && strings.ContainsRune("kKmMgG", rune(t[len(t)-1])) {
		n, u := strings.TrimSpace(t[:len(t)-1]), strings.ToUpper(t[len(t)-1:])
		if _, ok := new(big.Rat).SetString(n); ok {
			return 0, fmt.Errorf("%q is ambiguous: write %q (1024s) or %q (1000s)", s, n+u+"iB", n+u+"B")
		}
	}
	// At most 1 TiB, and what an int holds (2 GiB on 32-bit boards).
	const most = min(int64(1<<40), int64(math.MaxInt))
	notSize := fmt.Errorf("%q is not a size: a number of bytes (1024), or a number with one of the units KB, MB, GB (1000s) or KiB, MiB, GiB (1024s), in any case (\"8KiB\", \"16mib\", \"1.5MB\")", s)
	if strings.HasPrefix(t, "-") {
		if _, ok := new(big.Rat).SetString(t); ok {
			// README: a negative number is refused (before, as "not a size").
			return 0, fmt.Errorf("%q is negative: a size is 0 or more", s)
		}
		return 0, notSize
	}
	// A whole number, or a decimal fraction of a unit that is a whole
	// number of bytes ("1.5MiB"); not 1e6, 0x10 or 1/2.
	if t == "" || strings.Trim(t, "0123456789.") != "" || strings.Count(t, ".") > 1 || t == "." {
		return 0, notSize
	}
	r, ok := new(big.Rat).SetString(t)
	if !ok {
		return 0, notSize
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	if !r.IsInt() {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	if !r.Num().IsInt64() || r.Num().Int64() > most {
		return 0, fmt.Errorf("%q is too large (at most %s here)", s, formatSize(most))
	}
	return int(r.Num().Int64()), nil
}

// loadConfig reads a configuration: the embedded default when path is "",
// else the file over the embedded default. override, if not nil, changes
// the configuration (command-line flags) before it is validated.
func loadConfig(path string, override func(*config)) (*config, error) {
	return loadConfigFrom(path, override, readOnce)
}

// reloadConfigFile is loadConfig for a reload: the file is read again,
// which a pipe cannot be (errPipeReread).
func reloadConfigFile(path string, override func(*config)) (*config, error) {
	return loadConfigFrom(path, override, readAgain)
}

// startConfigFile is loadConfig for run's start: a regular file is read
// once it has been left alone for configQuiet, as a reload reads it
// (readConfigFile). Before, the start read what it found: a router
// (re)started while its file was being written in place (cp over it, a
// tool that truncates and writes; systemd's Restart= after a crash, a
// second operator's restart) ran on the part written so far, a valid
// configuration at many cuts, among them the embedded default's open
// realm1 when the cut comes before realms:, or a realm cut before its
// security: true and its users. check-config is not held up: the unit's
// ExecStartPre refusing a cut file only delays the start.
func startConfigFile(path string, override func(*config)) (*config, error) {
	c, err := loadConfigFrom(path, override, readStart)
	if errors.Is(err, errConfigChanging) {
		return nil, fmt.Errorf("%s: the file went on changing for %s (being written?): not starting; start again once it is written", path, configSettleMax)
	}
	return c, err
}

// readMode is how loadConfigFrom reads the file: once, as it is
// (check-config); at run's start, once it is left alone; at a reload, once
// it is left alone, and never a pipe again.
type readMode int

const (
	readOnce readMode = iota
	readStart
	readAgain
)

func loadConfigFrom(path string, override func(*config), mode readMode) (*config, error) {
	data, name := defaultConfig, "embedded default"
	if path != "" {
		var b []byte
		var err error
		if mode == readOnce {
			b, _, err = readConfigOnce(path, false)
		} else {
			b, err = readConfigSettled(path, mode == readAgain)
		}
		if err != nil {
			return nil, err
		}
		data, name = b, path
	}
	c, err := parseConfig(data, override)
	if err != nil {
		return nil, namedErrors(name, err)
	}
	return c, nil
}

// namedErrors joins the errors of err, a configuration's from the file
// name: an error in a flag's value is the flag's, not the file's.
func namedErrors(name string, err error) error {
	var flagErrs, fileErrs []error
	for _, e := range unjoin(err) {
		if fe := (*flagError)(nil); errors.As(e, &fe) {
			flagErrs = append(flagErrs, e)
		} else {
			fileErrs = append(fileErrs, e)
		}
	}
	if len(fileErrs) > 0 {
		flagErrs = append(flagErrs, fmt.Errorf("%s: %w", name, errors.Join(fileErrs...)))
	}
	return errors.Join(flagErrs...)
}

// maxConfigFile bounds the configuration file, far past any real one (a
// thousand realms with their users and roles take a few MiB).
const maxConfigFile = 16 << 20

// readConfigFile reads the configuration file at path: a regular file of
// at most maxConfigFile bytes, or a pipe (-config <(...), /dev/stdin), of
// which at most maxConfigFile bytes are read. Before, the file was read
// whole, with no bound, at start, by check-config and at every SIGHUP:
// check-config /dev/zero ran out of memory, and a 32 MiB file took 6.5 to
// 9.7 s and 625 MiB to parse.
//
// again (a reload) opens it without waiting and refuses a pipe
// (errPipeReread): what it held was read at the start, and opening a
// named pipe waits for a writer, which a SIGHUP did on the goroutine that
// handles the signals: with none, for ever, and the router's stop with it.
func readConfigFile(path string, again bool) ([]byte, error) {
	if !again {
		b, _, err := readConfigOnce(path, false)
		return b, err
	}
	return readConfigSettled(path, true)
}

// readConfigSettled reads a regular file once it has been left alone for
// configQuiet, and again if it changed while it was read (see
// awaitQuietConfig); a pipe at once. again: readConfigOnce's.
func readConfigSettled(path string, again bool) ([]byte, error) {
	deadline := time.Now().Add(configSettleMax)
	for {
		if err := awaitQuietConfig(path, deadline); err != nil {
			return nil, err
		}
		b, changed, err := readConfigOnce(path, again)
		if err != nil || !changed {
			return b, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: %w", path, errConfigChanging)
		}
	}
}

// configQuiet and configSettleMax: a reload waits until the configuration
// file has not been modified for configQuiet, for at most configSettleMax
// (then it is refused, errConfigChanging). A file written in place (cp
// over it, a tool that truncates and writes) is a valid YAML prefix of
// itself at many points (a cut inside a comment, a value or at a line's
// end: 1,606 of the 5,399 byte prefixes of deploy/secure.yaml parse, 686 of
// them to a configuration with an anonymous realm without RBAC, the
// embedded default's realm1 when the cut comes before realms:). Before,
// a SIGHUP that came while such a write was under way (a certificate
// hook's, a second operator's) installed that prefix: the realms after the
// cut removed and their sessions ended, the router perhaps opened. A
// writer pausing longer than configQuiet between its writes is not
// caught; replacing the file (write a new one, then rename it over the
// old) never needs this.
const (
	configQuiet     = 200 * time.Millisecond
	configSettleMax = 2 * time.Second
)

// errConfigChanging refuses a reload whose file went on changing.
var errConfigChanging = errors.New("the file went on changing for " + configSettleMax.String() + " (being written?): not reloaded; send SIGHUP again once it is written")

// errReloadStopped refuses a reload that was waiting for its file when a
// stop signal came.
var errReloadStopped = errors.New("a stop signal came while the reload waited for the file to be written: not reloaded")

// awaitQuietConfig returns once the regular file at path has not been
// modified for configQuiet: its modification time is that old (coarseTime
// more for a time of a whole second, coarseMTime), or it has
// stayed the same (size, modification time, inode) for configQuiet of
// waiting here (a time in the future, the clock set back). It returns
// errConfigChanging past deadline, errReloadStopped when SIGINT or
// SIGTERM comes while it waits (the stop does not wait for it; os/signal
// delivers the signal to the main loop's channel too), and nil at once
// for what is not a regular file (the read says what is wrong with it).
// It blocks; a file left alone, the usual case, costs one stat.
func awaitQuietConfig(path string, deadline time.Time) error {
	var seen os.FileInfo
	var seenAt time.Time
	var stop chan os.Signal // once it waits
	defer func() {
		if stop != nil {
			signal.Stop(stop)
		}
	}()
	var seenData []byte // what seen held, once it waits (nil: not read)
	for {
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		now := time.Now()
		if seen != nil && !sameState(seen, fi) && os.SameFile(seen, fi) && seen.Size() == fi.Size() && seenData != nil {
			// Only the modification time moved (touch, a
			// configuration-management agent's run): what it holds is
			// what was seen, it is not being written. Before, a file
			// touched every 100 ms never reloaded (refused after 2 s).
			if b, ok := readSettled(path, fi); ok && bytes.Equal(b, seenData) {
				seen = fi
			}
		}
		if seen == nil || !sameState(seen, fi) {
			seen, seenAt, seenData = fi, now, nil
		}
		// A time cut to the second may be up to coarseTime older than
		// the last write (coarseMTime): it is not trusted alone before
		// then.
		age, still := now.Sub(fi.ModTime())-coarseMTime(fi.ModTime()), now.Sub(seenAt)
		if age >= configQuiet || still >= configQuiet {
			return nil
		}
		if seenData == nil {
			if b, ok := readSettled(path, fi); ok {
				seenData = b
			}
		}
		if now.After(deadline) {
			return fmt.Errorf("%s: %w", path, errConfigChanging)
		}
		wait := configQuiet - still
		if age >= 0 {
			wait = min(wait, configQuiet-age)
		}
		if stop == nil {
			stop = make(chan os.Signal, 1)
			signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
		}
		t := time.NewTimer(min(wait, time.Until(deadline)+time.Millisecond))
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return fmt.Errorf("%s: %w", path, errReloadStopped)
		}
	}
}

// coarseTime is how much older than the last write a file system with
// coarse timestamps may report a file: 2 s on FAT (a board's boot
// partition), 1 s on ext3, HFS+ or NFS from such a server.
const coarseTime = 2 * time.Second

// coarseMTime returns coarseTime for a modification time of a whole
// second, which such a file system gives (one with nanoseconds does so
// once in a billion writes, or for a time set by cp -p, tar or rsync -t:
// such a file, left alone, waits only if it is younger than coarseTime
// plus configQuiet), else 0. Before, awaitQuietConfig took a time
// configQuiet old for a file left alone: on these file systems a file
// being written at that moment looked up to 2 s old, and the wait
// returned at once, with the part written so far.
func coarseMTime(t time.Time) time.Duration {
	if t.Nanosecond() == 0 {
		return coarseTime
	}
	return 0
}

// readSettled returns what the regular file at path holds, if it is
// still the file fi says (same file, size, modification time) once read
// and at most maxConfigFile bytes.
func readSettled(path string, fi os.FileInfo) ([]byte, bool) {
	if fi.Size() > maxConfigFile {
		return nil, false
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, false
	}
	after, err := f.Stat()
	if err != nil || !sameState(fi, after) || int64(len(b)) != fi.Size() {
		return nil, false
	}
	return b, true
}

// sameState reports whether a and b, two stats of a path, are of the same
// file with the same size and modification time.
func sameState(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// readConfigOnce reads the configuration file at path (readConfigFile).
// changed reports, for a regular file, that it was modified while it was
// read.
func readConfigOnce(path string, again bool) (b []byte, changed bool, err error) {
	flags := os.O_RDONLY
	if again {
		flags |= syscall.O_NONBLOCK
	}
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	tooLarge := fmt.Errorf("%s is larger than %s, the most a configuration file may be", path, formatSize(maxConfigFile))
	switch m := fi.Mode(); {
	case m.IsRegular():
		if fi.Size() > maxConfigFile {
			return nil, false, tooLarge
		}
	case m&os.ModeNamedPipe != 0:
		if again {
			return nil, false, fmt.Errorf("%s: %w", path, errPipeReread)
		}
	default:
		return nil, false, fmt.Errorf("%s is %s, not a configuration file (a regular file or a pipe)", path, fileKind(m))
	}
	b, err = io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, false, err
	}
	if len(b) > maxConfigFile {
		return nil, false, tooLarge
	}
	if fi.Mode().IsRegular() {
		after, err := f.Stat()
		changed = err != nil || !sameState(fi, after) || int64(len(b)) != after.Size()
	}
	return b, changed, nil
}

// errPipeReread is a reload's refusal of a configuration read from a pipe.
var errPipeReread = errors.New("is a pipe, which cannot be read again")

// parseConfig decodes data strictly over the embedded default, so that every
// key data leaves out keeps the default's value (a list, such as listeners
// or realms, is taken whole from data when data has it), applies override
// and validates.
func parseConfig(data []byte, override func(*config)) (*config, error) {
	var c config
	if _, err := decodeStrict(defaultConfig, &c); err != nil {
		return nil, fmt.Errorf("embedded default: %w", err) // a build defect; tests catch it
	}
	root, err := decodeStrict(data, &c)
	if err != nil {
		return nil, err
	}
	c.root = root
	if override != nil {
		override(&c)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if _, err := c.realmConfigs(); err != nil {
		return nil, err
	}
	return &c, nil
}

// decodeStrict decodes the YAML document of data into c: unknown keys
// and values of the wrong type are errors naming the line. It returns the
// document's node, for the line numbers of later errors. The
// configuration is one document: a file with a second one (after a `---`
// line) is refused, since everything in it would be ignored (a file whose
// realms follow a `---` ran with the embedded default's open realm1, and
// check-config said ok); a file with none, or only empty ones (`---`,
// `null`), is refused as empty.
func decodeStrict(data []byte, c *config) (*yaml.Node, error) {
	var doc *yaml.Node
	nodes := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := nodes.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, cleanYAMLError(err, data)
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue // an empty document: `---` alone, or null
		}
		if doc != nil {
			return nil, fmt.Errorf("line %d: a second YAML document (after a `---` line): the configuration is one document, and this one would be ignored; join them into one, without the `---`", n.Content[0].Line)
		}
		doc = &n
	}
	if doc == nil {
		return nil, errors.New("the configuration is empty")
	}
	if m, alone := hugeMapping(doc.Content[0]); m != nil {
		at, _ := pathTo(doc.Content[0], m, nil)
		if !alone {
			keys := len(m.Content) / 2
			if m.Kind == yaml.AliasNode {
				keys = len(m.Alias.Content) / 2
			}
			return nil, fmt.Errorf("line %d: %s holds %d keys: with the configuration's other large mappings, more than its mappings may hold together (yaml's check for a key given twice takes time with the square of each one's keys; together, about two mappings of %d keys' worth)", m.Line, cmp.Or(at.String(), "the configuration"), keys, maxMappingKeys)
		}
		return nil, fmt.Errorf("line %d: %s holds %d keys, more than a mapping of the configuration may (%d): no key takes so many, and yaml's check for a key given twice takes time with the square of their number", m.Line, cmp.Or(at.String(), "the configuration"), len(m.Content)/2, maxMappingKeys)
	}
	// Strictly, through a decoder (a node's Decode has no KnownFields);
	// the empty documents before it leave c as it is.
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	for {
		err := dec.Decode(c)
		if errors.Is(err, io.EOF) {
			if errs := fractions(nil, doc.Content[0], reflect.TypeFor[config](), ""); len(errs) > 0 {
				return nil, errors.New(strings.Join(errs, "; "))
			}
			return doc, nil
		}
		if err != nil {
			return nil, cleanYAMLError(err, data)
		}
	}
}

// maxMappingKeys bounds the keys of a mapping of the configuration, far
// past any (a gateway's errors or headers, the top level: a few dozen).
// yaml's strict decoding compares each key of a mapping with every later
// one (the check for a key given twice): 30,000 unknown top-level keys
// (289 KB) kept check-config 9 s, a gateway.errors of 100,000 URIs
// (2.8 MB) minutes, and a 16 MiB file of them hours, every SIGHUP too,
// which held the reload path (TLS certificate rotation among it) that
// long. 10,000 keys take some 0.1 s.
const maxMappingKeys = 10_000

// maxMappingWork bounds the sum, over the configuration's mappings, of
// the square of each one's keys (yaml's work for its check for a key
// given twice): twice a mapping of maxMappingKeys. Before, each mapping
// was bounded alone, and a file of many mappings just under the bound
// (132 routes' errors of 10,000 URIs each, 15 MiB) kept check-config
// and every SIGHUP busy 47 s, 8.5 s for the same bytes in mappings of
// 100 keys.
const maxMappingWork = 2 * maxMappingKeys * maxMappingKeys

// hugeMapping returns the first mapping under n (in the document's order)
// with more than maxMappingKeys keys (alone true), or the mapping, or the
// alias, at which the mappings' squares add up to more than
// maxMappingWork, or nil. An alias counts the work of what it names again
// (yaml decodes it anew wherever it is named; before, a 135 KB file whose
// 20 routes named one anchored errors mapping of 9,000 URIs took 14.7 s),
// not followed for the single mapping's bound: the mapping it names is
// under n too.
func hugeMapping(n *yaml.Node) (_ *yaml.Node, alone bool) {
	work := 0
	named := map[*yaml.Node]int{} // the work of what an alias names
	var walk func(n *yaml.Node) (*yaml.Node, bool)
	walk = func(n *yaml.Node) (*yaml.Node, bool) {
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if work += aliasWork(n.Alias, named, 0); work > maxMappingWork {
				return n, false
			}
		}
		if n.Kind == yaml.MappingNode {
			keys := len(n.Content) / 2
			if keys > maxMappingKeys {
				return n, true
			}
			if work += keys * keys; work > maxMappingWork {
				return n, false
			}
		}
		for _, c := range n.Content {
			if m, alone := walk(c); m != nil {
				return m, alone
			}
		}
		return nil, false
	}
	return walk(n)
}

// aliasWork is the sum of the squares of the mappings' keys under n,
// what an alias names, its own aliases followed (memo keeps each node's;
// depth, the aliases followed, bounds a cycle); past maxMappingWork, it
// stops counting.
func aliasWork(n *yaml.Node, memo map[*yaml.Node]int, depth int) int {
	if w, ok := memo[n]; ok {
		return w
	}
	if depth > 100 {
		return maxMappingWork + 1
	}
	w := 0
	switch {
	case n.Kind == yaml.AliasNode && n.Alias != nil:
		w = aliasWork(n.Alias, memo, depth+1)
	case n.Kind == yaml.MappingNode:
		w = (len(n.Content) / 2) * (len(n.Content) / 2)
	}
	for _, c := range n.Content {
		if w <= maxMappingWork {
			w += aliasWork(c, memo, depth)
		}
	}
	w = min(w, maxMappingWork+1)
	memo[n] = w
	return w
}

// pathTo returns the path of target under n, n being at at, as
// lineIndex writes it; ok false when target is not under n.
func pathTo(n, target *yaml.Node, at *pathPart) (_ *pathPart, ok bool) {
	if n == target {
		return at, true
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if p, ok := pathTo(n.Content[i+1], target, &pathPart{up: at, key: n.Content[i].Value}); ok {
				return p, true
			}
			if p, ok := pathTo(n.Content[i], target, at); ok { // a mapping as a key
				return p, true
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if p, ok := pathTo(c, target, &pathPart{up: at, index: i, list: true}); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// fractions appends to errs a line for each number with a fraction
// (1.5, -0.5, 2.5e-1) that n, decoded into a value of type t at path (a
// dotted key, as cleanYAMLError writes it), gives a whole-number key. yaml
// takes a float for an integer and drops the fraction: `loops: 1.5` ran
// one loop, `max_connections_per_address: 0.5` turned the bound off (0)
// and `auth_failures.block_after: 0.9` took the default, and
// check-config said ok. A whole float (1e3, 2.0) is the integer it names.
func fractions(errs []string, n *yaml.Node, t reflect.Type, path string) []string {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return errs // a duration, a size: its own parser refuses a fraction
	}
	key := cmp.Or(path, "the configuration")
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!float" {
			if f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil && f != math.Trunc(f) {
				errs = append(errs, fmt.Sprintf("line %d: %s takes a whole number, not `%s`", n.Line, key, n.Value))
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return errs
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if isMergeKey(n.Content[i]) {
				errs = mergedFractions(errs, n.Content[i+1], t, path)
				continue
			}
			for j := 0; j < t.NumField(); j++ {
				if f := t.Field(j); f.IsExported() && strings.Split(f.Tag.Get("yaml"), ",")[0] == n.Content[i].Value {
					at := strings.TrimPrefix(path+"."+n.Content[i].Value, ".")
					errs = envReference(errs, n.Content[i+1], t, n.Content[i].Value, at)
					errs = fractions(errs, n.Content[i+1], f.Type, at)
					break
				}
			}
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for i, e := range n.Content {
				errs = fractions(errs, e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if isMergeKey(n.Content[i]) {
					errs = mergedFractions(errs, n.Content[i+1], t, path)
					continue
				}
				errs = fractions(errs, n.Content[i+1], t.Elem(), strings.TrimPrefix(path+"."+n.Content[i].Value, "."))
			}
		}
	}
	return errs
}

// envRefRE matches a value that is only an environment variable's
// reference, as a shell, docker compose or Crossbar.io writes it.
// envLikeRE: a name written as environment variables are, in capitals.
var envLikeRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

var envRefRE = regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$`)

// envReference appends to errs a line when v, the value of key in a
// mapping of type t (at path), is `${NAME}` or `$NAME` and t has key_env
// beside key (token, secret, key, password): the configuration expands
// no variable, and the secret was the reference's text itself, which
// README and the samples print. Before, `token: "${EDGEWAMP_MESH_TOKEN}"`
// passed check-config and joined the mesh with that text as its token;
// an API key or a WAMP-CRA secret so written was likewise taken.
func envReference(errs []string, v *yaml.Node, t reflect.Type, key, path string) []string {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	m := envRefRE.FindStringSubmatch(v.Value)
	if v.Kind != yaml.ScalarNode || m == nil {
		return errs
	}
	if m[2] != "" && !envLikeRE.MatchString(m[2]) {
		// $name without braces is a variable's name only in capitals
		// (EDGEWAMP_MESH_TOKEN), or when the environment has it: a
		// password such as "$ecretPassw0rd" is a password (it was taken
		// as one before, and refused by the first form of this check).
		if _, set := os.LookupEnv(m[2]); !set {
			return errs
		}
	}
	for j := 0; j < t.NumField(); j++ {
		if strings.Split(t.Field(j).Tag.Get("yaml"), ",")[0] == key+"_env" {
			return append(errs, fmt.Sprintf("line %d: %s: %q would be taken as it is (the configuration expands no environment variable): write %s_env: %s", v.Line, path, v.Value, key, m[1]+m[2]))
		}
	}
	return errs
}

// isMergeKey reports whether k is a YAML merge key (`<<`), whose value's
// members yaml decodes as the mapping's own: before, fractions skipped
// it (no field is named "<<"), and `limits: {<<:
// {max_connections_per_address: 0.5}}` turned the bound off unrefused.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// mergedFractions is fractions for a merge key's value v in a mapping of
// type t at path: a mapping, an alias of one, or a list of them.
func mergedFractions(errs []string, v *yaml.Node, t reflect.Type, path string) []string {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind == yaml.SequenceNode {
		for _, e := range v.Content {
			errs = fractions(errs, e, t, path)
		}
		return errs
	}
	return fractions(errs, v, t, path)
}

// cleanYAMLError turns "yaml: unmarshal errors:\n  line 3: field x not found
// in type main.config" into one readable line per problem.
func cleanYAMLError(err error, data []byte) error {
	var root *lineIndex // built once, at the first message that needs it
	doc := func() *lineIndex {
		if root == nil {
			n := &yaml.Node{}
			_ = yaml.Unmarshal(data, n)
			root = indexLines(n)
		}
		return root
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if i := strings.Index(l, " not found in type "); i > 0 {
			l = l[:i] + " is not a known configuration key"
			l = strings.Replace(l, "field ", "key ", 1)
			// Where it is, for a key under another: "realm" under a
			// listener (before, only its line and name were said).
			var line int
			var name string
			if _, err := fmt.Sscanf(l, "line %d: key %s is not", &line, &name); err == nil {
				at := doc().keyPaths(line, name)
				if len(at) == 1 && at[0] != name {
					l += " (at " + at[0] + ")"
				}
				if len(at) == 1 {
					parent := ""
					if i := strings.LastIndexByte(at[0], '.'); i >= 0 {
						parent = at[0][:i]
					}
					if k := nearestKey(parent, name); k != "" {
						l += "; did you mean " + k + "?"
					}
				}
			}
		}
		if m := parserErrRE.FindStringSubmatch(l); m != nil {
			l = parserError(m)
		}
		if m := tabErrRE.FindStringSubmatch(l); m != nil {
			l = tabError(l, m, data)
		}
		if m := keyedErrRE.FindStringSubmatch(l); m != nil {
			l = keyedErrorAt(doc(), m, l)
		}
		if m := typeErrRE.FindStringSubmatch(l); m != nil {
			l = typeError(doc(), m)
		}
		lines = append(lines, l)
	}
	return errors.New(strings.Join(lines, "; "))
}

// parserErrRE matches the messages of yaml's parser (parserc.go), as
// against its scanner's: yaml numbers a parser error's line from 0 and
// leaves it out when it is 0 (decode.go's fail adds 1 for scanner errors
// only), so `log: {level: ${LEVEL}}` said "did not find expected ',' or
// '}'" with no line, and an unclosed `{` on line 3 said "line 2".
var parserErrRE = regexp.MustCompile(`^(?:line (\d+): )?(did not find expected (?:',' or '\]'|',' or '\}'|'-' indicator|<document start>|<stream-start>|key|node content)|found duplicate %(?:TAG|YAML) directive|found incompatible YAML document|found undefined tag handle)$`)

// parserError rewrites a parser error (parserErrRE's groups m) to name
// its line counted from 1.
func parserError(m []string) string {
	n, _ := strconv.Atoi(m[1]) // 0 when left out
	return fmt.Sprintf("line %d: %s", n+1, m[2])
}

// tabErrRE matches yaml's messages for a tab in a line's indentation,
// which name the line before it when the tab follows spaces or a sibling
// key: "line 2: found a tab character that violates indentation" for a
// tab on line 3.
var tabErrRE = regexp.MustCompile(`^line (\d+): found (?:a tab character that violates indentation|character that cannot start any token)$`)

// tabError rewrites yaml's message l (tabErrRE's groups m) to name the line
// whose indentation holds a tab, the reported one or the next, and say
// what is wrong (before, "line 2: found character that cannot start any
// token", often of a line without a tab). Without such a tab, l stays.
func tabError(l string, m []string, data []byte) string {
	n, _ := strconv.Atoi(m[1])
	lines := strings.Split(string(data), "\n")
	for i := n; i <= n+1 && i <= len(lines); i++ {
		indent := lines[i-1][:len(lines[i-1])-len(strings.TrimLeft(lines[i-1], " \t"))]
		if strings.Contains(indent, "\t") {
			return fmt.Sprintf("line %d: a tab in the indentation: YAML indents with spaces only", i)
		}
	}
	return l
}

// keyedErrRE matches a keyedError's message: "line 3: \"10mb\" is not a
// size ...".
var keyedErrRE = regexp.MustCompile(`^line (\d+): (".*)$`)

// keyedErrorAt names the key of the keyedError message l (keyedErrRE's
// groups m), unless another value on the line looks the same.
func keyedErrorAt(root *lineIndex, m []string, l string) string {
	line, _ := strconv.Atoi(m[1])
	q, err := strconv.QuotedPrefix(m[2])
	if err != nil {
		return l
	}
	v, _ := strconv.Unquote(q)
	if keys := root.valuePaths(line, yaml.ScalarNode, v, nil); len(keys) == 1 {
		return fmt.Sprintf("line %d: %s: %s", line, keys[0], m[2])
	}
	return l
}

// typeErrRE matches yaml's message for a value of the wrong type:
// "line 3: cannot unmarshal !!str `two` into int" (no value for a list or
// a mapping).
var typeErrRE = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")

// typeError rewrites yaml's wrong-type message m (typeErrRE's groups) to
// name the key and what it takes, in the configuration's words instead of
// Go's: "line 3: loops takes a whole number, not `two`".
func typeError(root *lineIndex, m []string) string {
	line, _ := strconv.Atoi(m[1])
	kinds := map[string]yaml.Kind{"seq": yaml.SequenceNode, "map": yaml.MappingNode}
	kind, ok := kinds[m[2]]
	if !ok {
		kind = yaml.ScalarNode
	}
	got := "`" + m[3] + "`"
	switch kind {
	case yaml.SequenceNode:
		got = "a list"
	case yaml.MappingNode:
		got = "a mapping"
	}
	var want string
	switch t := strings.TrimPrefix(m[4], "*"); {
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		want = "a whole number"
	case strings.HasPrefix(t, "float"):
		want = "a number"
	case t == "bool":
		want = "true or false"
	case t == "string":
		want = "a single value"
	case t == reflect.TypeFor[duration]().String():
		want = `a duration like "10s"`
	case t == reflect.TypeFor[size]().String():
		want = `a size like "16MiB"`
	case strings.HasPrefix(t, "[]"):
		want = "a list"
	default: // a struct or a map
		want = "a mapping of keys"
	}
	// The key, unless another value on the line looks the same: a block
	// mapping starts on its first key's line, so `gateway:\n  listen: {a:
	// 1}` has two mappings on line 2; the one whose Go type yaml names is
	// the key (before, "line 2: a value takes a single value").
	keys := root.valuePaths(line, kind, m[3], nil)
	if len(keys) > 1 {
		keys = root.valuePaths(line, kind, m[3], func(k string) bool {
			ft := typeAtPath(reflect.TypeFor[config](), k)
			return ft != nil && ft.String() == m[4]
		})
	}
	if len(keys) == 1 {
		return fmt.Sprintf("line %d: %s takes %s, not %s", line, keys[0], want, got)
	}
	return fmt.Sprintf("line %d: a value takes %s, not %s", line, want, got)
}

// nearestKey is the configuration key under parent (a dotted path, as
// cleanYAMLError writes it; "" for the top level) nearest to name, a key the
// file gives there that is not known, or "" when none is near: the same
// but for case, '-' for '_', or within two edits (one for a name of three
// letters or fewer), a swap of two letters counting one. Before, a typo
// was refused without a hint (`levle`, `max_bdy`, `anonymus`).
func nearestKey(parent, name string) string {
	t := reflect.TypeFor[config]()
	if parent != "" {
		t = typeAtPath(t, parent)
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return ""
	}
	want := strings.ReplaceAll(strings.ToLower(name), "-", "_")
	best, bestD := "", min(2, max(1, len(want)/2))+1
	for j := range t.NumField() {
		f := t.Field(j)
		k := strings.Split(f.Tag.Get("yaml"), ",")[0]
		if !f.IsExported() || k == "" || k == "-" {
			continue
		}
		if d := editDistance(want, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance of a and b:
// insertions, deletions, substitutions and swaps of two neighbours.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// typeAtPath is the Go type of the configuration's value at path (as
// cleanYAMLError writes it, "realms[0].users[1].password"), or nil.
func typeAtPath(t reflect.Type, path string) reflect.Type {
	for _, part := range strings.Split(path, ".") {
		name, idx, _ := strings.Cut(part, "[")
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		var found reflect.Type
		for j := range t.NumField() {
			if f := t.Field(j); f.IsExported() && strings.Split(f.Tag.Get("yaml"), ",")[0] == name {
				found = f.Type
				break
			}
		}
		if found == nil {
			return nil
		}
		t = found
		for range strings.Count(idx, "[") + min(len(idx), 1) {
			for t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			if t.Kind() != reflect.Slice {
				return nil
			}
			t = t.Elem()
		}
	}
	return t
}

// lineIndex holds the mapping keys and the values of a YAML document by
// the line they start on, for the messages of cleanYAMLError, which name
// the key an error of yaml's, given by its line, is about. It is built in
// one walk of the document, and a path is written out only for the keys
// and values a message asks about. Before, each message walked the whole
// document and wrote out the path of every key on the way: the work grew
// with the errors times the file, and 5,000 users' mistyped key (one in a
// fleet's generated file) kept check-config, and every SIGHUP, busy 31 s.
type lineIndex struct {
	keys   map[lineKey][]indexed // mapping keys, by line and name
	values map[int][]indexed     // the values of mappings, lists and the document
}

// indexed is a node of the document and where it is.
type indexed struct {
	n  *yaml.Node
	at *pathPart
}

// pathPart is the last step of a dotted path, as cleanYAMLError writes
// it ("realms[0].users[1].password"): a mapping key, or a list index
// (key ""); up is the path it goes on from (nil: the top level).
type pathPart struct {
	up    *pathPart
	key   string
	index int
	list  bool
}

func (p *pathPart) String() string {
	if p == nil {
		return ""
	}
	up := p.up.String()
	switch {
	case p.list:
		return up + "[" + strconv.Itoa(p.index) + "]"
	case up == "":
		return p.key
	}
	return up + "." + p.key
}

// indexLines indexes the document n (yaml's node tree, aliases not
// followed).
func indexLines(n *yaml.Node) *lineIndex {
	x := &lineIndex{keys: map[lineKey][]indexed{}, values: map[int][]indexed{}}
	x.add(n, nil)
	return x
}

// add indexes what n holds, n being at path at. Keys and values are
// kept in the order of the document, which the messages' choices
// follow.
func (x *lineIndex) add(n *yaml.Node, at *pathPart) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			x.values[c.Line] = append(x.values[c.Line], indexed{c, at})
			x.add(c, at)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := &pathPart{up: at, key: k.Value}
			at := lineKey{k.Line, k.Value}
			x.keys[at] = append(x.keys[at], indexed{k, p})
			x.values[v.Line] = append(x.values[v.Line], indexed{v, p})
			x.add(v, p)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := &pathPart{up: at, index: i, list: true}
			x.values[c.Line] = append(x.values[c.Line], indexed{c, p})
			x.add(c, p)
		}
	}
}

// lineKey is a mapping key's line and name.
type lineKey struct {
	line int
	name string
}

// keyPaths returns the dotted paths of the mapping keys named name on
// line, at most two: a message names a key only where it alone is on its
// line. Before, all of them were written out, and on a file of one line
// (JSON, which YAML reads) each message wrote out as many as the file
// has errors of its kind.
func (x *lineIndex) keyPaths(line int, name string) []string {
	var paths []string
	for _, k := range x.keys[lineKey{line, name}] {
		if paths = append(paths, k.at.String()); len(paths) == 2 {
			break
		}
	}
	return paths
}

// sameText reports whether a value is the one yaml's message shows, which
// it cuts to its first 7 bytes and "..." beyond 10.
func sameText(value, shown string) bool {
	if len(value) > 10 && len(shown) == 10 && strings.HasSuffix(shown, "...") {
		return strings.HasPrefix(value, shown[:7])
	}
	return value == shown
}

// valuePaths returns the dotted paths ("realms[0].anonymous") of the
// values of kind (and, for a scalar, text) that start on line and that
// keep takes (nil: all), at most two, as keyPaths; the document itself is
// "the configuration".
func (x *lineIndex) valuePaths(line int, kind yaml.Kind, text string, keep func(path string) bool) []string {
	var keys []string
	for _, v := range x.values[line] {
		if v.n.Kind != kind || kind == yaml.ScalarNode && !sameText(v.n.Value, text) {
			continue
		}
		if p := cmp.Or(v.at.String(), "the configuration"); keep == nil || keep(p) {
			if keys = append(keys, p); len(keys) == 2 {
				break
			}
		}
	}
	return keys
}

// line finds the line of a key in the file: path elements are map keys
// (string) or sequence indexes (int). It returns 0 when the file does not
// have the key (the value came from the embedded default or a flag), but
// for a key an entry of the file's list leaves out (a listener without
// its address): the entry's line, as no default fills it.
func (c *config) line(path ...any) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	entry := false // n is an entry of a list of the file
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode && !(entry && n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
				return 0
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					line = n.Content[i].Line
					n = n.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				if entry {
					return line
				}
				return 0
			}
			entry = false
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return 0
			}
			n = n.Content[k]
			line = n.Line
			entry = true
		}
	}
	return line
}

// nullAt reports whether the file gives the key at path (as line's:
// "realms", 0, "authmethods") with no value (`key:`, `key: ~`), which
// yaml decodes as the key left out.
func (c *config) nullAt(path ...any) bool {
	if c.root == nil || len(c.root.Content) == 0 {
		return false
	}
	n := c.root.Content[0]
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return false
			}
			i := 0
			for i+1 < len(n.Content) && n.Content[i].Value != k {
				i += 2
			}
			if i+1 >= len(n.Content) {
				return false
			}
			n = n.Content[i+1]
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return false
			}
			n = n.Content[k]
		}
	}
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (c *config) errAt(errs *[]error, msg string, path ...any) {
	if f, ok := c.flags[pathKey(path...)]; ok {
		*errs = append(*errs, &flagError{"flag " + f + ": " + msg})
		return
	}
	if l := c.line(path...); l > 0 {
		msg = "line " + strconv.Itoa(l) + ": " + msg
	}
	*errs = append(*errs, errors.New(msg))
}

// validate checks values and fills defaults.
func (c *config) validate() error {
	var errs []error
	switch c.Log.Level {
	case "":
		c.Log.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		c.errAt(&errs, "log.level must be debug, info, warn or error, not "+strconv.Quote(c.Log.Level), "log", "level")
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "text"
	case "text", "json":
	default:
		c.errAt(&errs, "log.format must be text or json, not "+strconv.Quote(c.Log.Format), "log", "format")
	}
	if c.Loops < 0 || c.Loops > 256 {
		c.errAt(&errs, "loops must be between 0 (one per CPU) and 256", "loops")
	}
	if len(c.Listeners) == 0 {
		c.errAt(&errs, "at least one listener is required", "listeners")
	}
	for i, l := range c.Listeners {
		if p := listenAddrProblem(l.Address); p != "" {
			c.errAt(&errs, fmt.Sprintf("listeners[%d].address %q %s", i, l.Address, p), "listeners", i, "address")
		}
		switch l.Transport {
		case "", "both", "websocket", "rawsocket":
		default:
			c.errAt(&errs, fmt.Sprintf("listeners[%d].transport must be both, websocket or rawsocket, not %q", i, l.Transport), "listeners", i, "transport")
		}
		if l.MaxConnections < 0 {
			c.errAt(&errs, fmt.Sprintf("listeners[%d].max_connections must not be negative", i), "listeners", i, "max_connections")
		}
		if l.TLS != nil && (l.TLS.Cert == "" || l.TLS.Key == "") {
			c.errAt(&errs, fmt.Sprintf("listeners[%d].tls needs both cert and key", i), "listeners", i, "tls")
		}
		for j, s := range l.TrustedProxies {
			if msg := proxyListError(fmt.Sprintf("listeners[%d].trusted_proxies[%d]", i, j), s); msg != "" {
				c.errAt(&errs, msg, "listeners", i, "trusted_proxies", j)
			}
		}
	}
	if p := c.WebSocket.Path; p != "" && !strings.HasPrefix(p, "/") {
		c.errAt(&errs, "websocket.path must start with /", "websocket", "path")
	} else if !reachablePath(p) {
		c.errAt(&errs, fmt.Sprintf("websocket.path %q would never match a request: a request's path is visible ASCII without spaces, and ? and # end it (percent-encode other octets, as clients send them)", p), "websocket", "path")
	}
	if p := c.WebSocket.HealthPath; p != "" && !strings.HasPrefix(p, "/") {
		c.errAt(&errs, "websocket.health_path must start with /", "websocket", "health_path")
	} else if !reachablePath(p) {
		c.errAt(&errs, fmt.Sprintf("websocket.health_path %q would never match a request: a request's path is visible ASCII without spaces, and ? and # end it (percent-encode other octets, as clients send them)", p), "websocket", "health_path")
	}
	if orDefault(c.WebSocket.Path, "/ws") == orDefault(c.WebSocket.HealthPath, "/healthz") {
		key := "path"
		if c.line("websocket", key) == 0 { // the embedded default's: name the file's
			key = "health_path"
		}
		c.errAt(&errs, "websocket.path and websocket.health_path must differ (the health check would answer every upgrade)", "websocket", key)
	}
	for i, o := range c.WebSocket.AllowedOrigins {
		if !validOrigin(o) {
			c.errAt(&errs, fmt.Sprintf("websocket.allowed_origins[%d]: an origin is scheme://host[:port] (as a browser sends it, e.g. https://app.example.com; no wildcard hosts), null or *, not %q", i, o), "websocket", "allowed_origins", i)
		}
	}
	if c.Limits.MaxMessage > 16<<20 {
		c.errAt(&errs, "limits.max_message is at most 16MiB", "limits", "max_message")
	}
	if c.Limits.MaxMessage != 0 && c.Limits.MaxMessage < 512 {
		c.errAt(&errs, "limits.max_message is at least 512 bytes", "limits", "max_message")
	}
	// A size is bytes without a unit: max_handshake: 8, meant as 8 KiB,
	// answered every WebSocket upgrade 431 (the shortest upgrade request
	// takes about 190 bytes), and check-config said ok.
	if c.Limits.MaxHandshake != 0 && c.Limits.MaxHandshake < minHandshake {
		c.errAt(&errs, fmt.Sprintf("limits.max_handshake %d bytes is below the minimum, %d bytes: no WebSocket upgrade request would fit (a size without a unit is bytes: 8KiB, not 8)", c.Limits.MaxHandshake, minHandshake),
			"limits", "max_handshake")
	}
	// Without a maximum, a peer's header was scanned again at each read
	// until the bound: 1.4 s of a loop's CPU for a 16 MiB one.
	if c.Limits.MaxHandshake > loop.MaxHandshakeMax {
		c.errAt(&errs, fmt.Sprintf("limits.max_handshake %d bytes is above the maximum, %d bytes (64KiB)", c.Limits.MaxHandshake, loop.MaxHandshakeMax),
			"limits", "max_handshake")
	}
	for _, l := range []struct {
		v    int
		name string
	}{{c.Limits.CallsInFlight, "calls_in_flight"}, {c.Limits.Registrations, "registrations"}, {c.Limits.Subscriptions, "subscriptions"},
		{c.Limits.WildcardRegistrations, "wildcard_registrations"}, {c.Limits.WildcardSubscriptions, "wildcard_subscriptions"},
		{c.Limits.RealmWildcardRegistrations, "realm_wildcard_registrations"}, {c.Limits.RealmWildcardSubscriptions, "realm_wildcard_subscriptions"},
		{c.Limits.MaxTLSHandshakes, "max_tls_handshakes"}, {c.Limits.MaxTLSHandshakesPerAddress, "max_tls_handshakes_per_address"},
		{c.Limits.RetainedEventsPerPublisher, "retained_events_per_publisher"},
		{c.Limits.MaxConnectionsPerAddress, "max_connections_per_address"}, {c.Limits.CallsInFlightTotal, "calls_in_flight_total"}} {
		if l.v < 0 {
			c.errAt(&errs, "limits."+l.name+" must not be negative", "limits", l.name)
		}
	}
	// A publisher's share is at most the realm's (which turns it off).
	if c.Limits.RetainedEventsPerPublisher > route.MaxRetainedTopics {
		c.errAt(&errs, fmt.Sprintf("limits.retained_events_per_publisher is at most %d, the retained topics of a realm (which turns the share off)", route.MaxRetainedTopics),
			"limits", "retained_events_per_publisher")
	}
	if rb := cmp.Or(int(c.Limits.RetainedBytes), defaultRetainedBytes); int(c.Limits.RetainedBytesPerPublisher) > rb {
		c.errAt(&errs, fmt.Sprintf("limits.retained_bytes_per_publisher %s is above limits.retained_bytes, %s (equal turns the share off)",
			formatSize(int64(c.Limits.RetainedBytesPerPublisher)), formatSize(int64(rb))), "limits", "retained_bytes_per_publisher")
	}
	// A client's quarter must hold a call.
	if n := c.Limits.CallsInFlightTotal; n > 0 && n < 4 {
		c.errAt(&errs, fmt.Sprintf("limits.calls_in_flight_total %d is below 4 (a client address's or authid's quarter must hold a call)", n),
			"limits", "calls_in_flight_total")
	}
	if sb := c.Limits.SubscriptionBytes; sb != 0 && sb < minSubscriptionBytes {
		c.errAt(&errs, fmt.Sprintf("limits.subscription_bytes %s is below %s (a client address's or authid's quarter must hold 58 subscriptions of the longest URI)",
			formatSize(int64(sb)), formatSize(minSubscriptionBytes)), "limits", "subscription_bytes")
	}
	if rb := c.Limits.RegistrationBytes; rb != 0 && rb < minRegistrationBytes {
		c.errAt(&errs, fmt.Sprintf("limits.registration_bytes %s is below %s (a client address's or authid's quarter must hold 56 registrations of the longest URI)",
			formatSize(int64(rb)), formatSize(minRegistrationBytes)), "limits", "registration_bytes")
	}
	// A client's quarter must hold one testament of the largest meta
	// call's arguments.
	if lb := c.Limits.LoginBytes; lb != 0 && lb < minLoginBytes {
		c.errAt(&errs, fmt.Sprintf("limits.login_bytes %s is below %s (the logins of a fleet reconnecting at once must fit: one may hold ~35 KiB)",
			formatSize(int64(lb)), formatSize(minLoginBytes)), "limits", "login_bytes")
	}
	if tb := c.Limits.TestamentBytes; tb != 0 && tb < minTestamentBytes {
		c.errAt(&errs, fmt.Sprintf("limits.testament_bytes %s is below %s (a client address's or authid's quarter must hold a testament of 64 KiB)",
			formatSize(int64(tb)), formatSize(minTestamentBytes)), "limits", "testament_bytes")
	}
	// 1 KiB was taken: every message longer than one read was closed
	// 1009, every connection holding a partial message closed after 5 s,
	// and output squeezed for every connection with a backlog.
	if v := c.Limits.MaxInboundTotal; v != 0 && v < minMemoryTotal {
		c.errAt(&errs, fmt.Sprintf("limits.max_inbound_total %s is below the minimum, %s (a frame is counted in 64 KiB chunks, and past half of it every connection whose partial message does not grow by 40 KiB in 5 s is closed)",
			formatSize(int64(v)), formatSize(minMemoryTotal)), "limits", "max_inbound_total")
	}
	if v := c.Limits.MaxOutboundTotal; v != 0 && v < minMemoryTotal {
		c.errAt(&errs, fmt.Sprintf("limits.max_outbound_total %s is below the minimum, %s (while it is exceeded every connection's backlog marks tighten to 16 KiB and high_water, and each event loop counts the output it produces in 64 KiB steps)",
			formatSize(int64(v)), formatSize(minMemoryTotal)), "limits", "max_outbound_total")
	}
	// 0 is the default: compare the marks the event loops will use (the
	// check skipped a mark of 0, so a high_water above hard_limit's
	// default passed here and was refused at start).
	if hw, hard := int(c.Limits.HighWater), int(c.Limits.HardLimit); cmp.Or(hard, defaultHardLimit) < cmp.Or(hw, defaultHighWater) {
		switch {
		case hard == 0:
			c.errAt(&errs, fmt.Sprintf("limits.high_water %s is above limits.hard_limit's default, %s: set hard_limit too", formatSize(int64(hw)), formatSize(defaultHardLimit)), "limits", "high_water")
		case hw == 0:
			c.errAt(&errs, fmt.Sprintf("limits.hard_limit %s is below limits.high_water's default, %s: set high_water too", formatSize(int64(hard)), formatSize(defaultHighWater)), "limits", "hard_limit")
		default:
			key := "hard_limit"
			if c.line("limits", key) == 0 { // the embedded default's: name the file's
				key = "high_water"
			}
			c.errAt(&errs, fmt.Sprintf("limits.hard_limit must not be below limits.high_water (%s, %s)", formatSize(int64(hard)), formatSize(int64(hw))), "limits", key)
		}
	}
	c.validateAuthFailures(&errs)
	switch c.Tuning.Flush {
	case "", "adaptive", "round", "traffic":
	default:
		c.errAt(&errs, "tuning.flush must be adaptive, round or traffic, not "+strconv.Quote(c.Tuning.Flush), "tuning", "flush")
	}
	// The event loops time these at their once-a-second scan, and WAMP
	// counts a call's timeout in milliseconds: below that a value means
	// "at the next scan" or "at once". keepalive.interval: 1ns pinged
	// every connection every second, keepalive.timeout: 1ns or
	// hello_timeout: 1ns closed nearly every session, and check-config
	// said ok. 0 is the default. hello_timeout is a route timer, kept to
	// the millisecond, not the scan's: its floor is 100 ms (as the other
	// short floors, mesh.ping_interval and oauth.sync_interval), so that a
	// hello_timeout: 500ms that worked is not refused.
	const scan = "the event loops look at their connections once a second"
	const wampMS = "WAMP counts a call's timeout in milliseconds"
	c.durationFloors(&errs, []durationFloor{
		{c.Keepalive.Interval, time.Second, scan, "", []any{"keepalive", "interval"}},
		{c.Keepalive.Timeout, time.Second, scan, "", []any{"keepalive", "timeout"}},
		{c.Limits.HandshakeTimeout, time.Second, scan, "", []any{"limits", "handshake_timeout"}},
		{c.Limits.HelloTimeout, 100 * time.Millisecond, "a client's HELLO and its authentication take round trips", "", []any{"limits", "hello_timeout"}},
		{c.Limits.IdleTimeout, time.Second, scan, "", []any{"limits", "idle_timeout"}},
		{c.RPC.CallTimeout, time.Millisecond, wampMS, "", []any{"rpc", "call_timeout"}},
		{c.RPC.MaxCallTimeout, time.Millisecond, wampMS, "", []any{"rpc", "max_call_timeout"}},
		// window: 1ns forgot each failed login before the next, so that
		// no authid or address was ever locked out; lockout: 1ns ended a
		// lockout at once.
		{c.Limits.AuthFailures.Window, time.Second, "below it a guesser's failures are forgotten before its next try: nothing is ever locked out", "",
			[]any{"limits", "auth_failures", "window"}},
		{c.Limits.AuthFailures.Lockout, time.Second, "below it a lockout ends before the guesser's next try", "", []any{"limits", "auth_failures", "lockout"}},
		// 1ns passed for a drain and ended it at once, with a warning
		// that its deadline had passed.
		{c.Shutdown.DrainTimeout, time.Second, "a call's answer, and a mesh node's leave, take round trips", "no drain", []any{"shutdown", "drain_timeout"}},
	})
	if p := c.Keepalive.RawSocketPings; p != "" && p != "proven" && p != "always" {
		c.errAt(&errs, "keepalive.rawsocket_pings must be proven or always, not "+strconv.Quote(p), "keepalive", "rawsocket_pings")
	}
	if _, err := loop.ParseIOUringMode(c.Tuning.IOUring); err != nil {
		c.errAt(&errs, "tuning.io_uring must be auto, on or off, not "+strconv.Quote(c.Tuning.IOUring), "tuning", "io_uring")
	}
	for _, k := range [...]struct{ key, v string }{{"park", c.Tuning.Park}, {"steady_sysmon", c.Tuning.SteadySysmon}} {
		switch k.v {
		case "", "auto", "on", "off":
		default:
			c.errAt(&errs, "tuning."+k.key+" must be auto, on or off, not "+strconv.Quote(k.v), "tuning", k.key)
		}
	}
	if time.Duration(c.Shutdown.DrainTimeout) > maxDrainTimeout {
		c.errAt(&errs, "shutdown.drain_timeout must be at most 10m", "shutdown", "drain_timeout")
	}
	if c.RPC.MaxCallTimeout != 0 && c.RPC.CallTimeout > c.RPC.MaxCallTimeout {
		c.errAt(&errs, "rpc.call_timeout exceeds rpc.max_call_timeout", "rpc", "call_timeout")
	}
	c.validateRuntime(&errs)
	if len(c.Realms) == 0 {
		c.errAt(&errs, "at least one realm is required", "realms")
	}
	c.validateMesh(&errs)
	seen := map[string]bool{}
	for i, r := range c.Realms {
		if !proto.ValidURI([]byte(r.Name), proto.URILoose) {
			c.errAt(&errs, fmt.Sprintf("realms[%d].name %q is not a valid URI", i, r.Name), "realms", i, "name")
		}
		if seen[r.Name] {
			c.errAt(&errs, fmt.Sprintf("realm %q is configured twice", r.Name), "realms", i, "name")
		}
		seen[r.Name] = true
		switch r.URICheck {
		case "", "loose", "strict":
		default:
			c.errAt(&errs, fmt.Sprintf("realms[%d].uri_check must be loose or strict", i), "realms", i, "uri_check")
		}
		c.validateSecurity(&errs, i)
	}
	c.validateOAuth(&errs)
	c.validateGateway(&errs)
	c.validateAddresses(&errs)
	if p := dataDirProblem(c.DataDir); p != "" {
		c.errAt(&errs, fmt.Sprintf("data_dir %q %s", c.DataDir, p), "data_dir")
	} else if p := dataDirTrustProblem(c.DataDir); p != "" {
		c.errAt(&errs, p, "data_dir")
	}
	if c.Mesh.enabled() {
		// As data_dir's: a file there was taken here and refused by the
		// start of a node that keeps the store (a hub, a cluster node).
		if p := dataDirProblem(c.Mesh.StoreDir); p != "" {
			c.errAt(&errs, fmt.Sprintf("mesh.store_dir %q %s", c.Mesh.StoreDir, p), "mesh", "store_dir")
		} else if p := meshStoreDirTrustProblem(c.Mesh.StoreDir); p != "" {
			c.errAt(&errs, p, "mesh", "store_dir")
		}
	}
	return errors.Join(errs...)
}

// reachablePath reports whether p, a websocket.path or health_path, can be
// the path of a request target as the listeners compare it (loop's
// requestPath: the target's octets up to a ?, which are visible ASCII).
func reachablePath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || c == '?' || c == '#' {
			return false
		}
	}
	return true
}

// minHandshake is limits.max_handshake's minimum (0 is its default).
const minHandshake = 512

// The event loops' defaults for limits.high_water and hard_limit (loop's
// defaultHighWater and HardLimit), which a 0 in the file stands for.
const (
	defaultHighWater = 256 << 10
	defaultHardLimit = 4 << 20
)

// defaultRetainedBytes is route's default of MaxRetainedBytes, which a 0
// in limits.retained_bytes stands for.
const defaultRetainedBytes = 64 << 20

// minTestamentBytes is the least limits.testament_bytes.
const minTestamentBytes = 1 << 20

// minLoginBytes is the least limits.login_bytes.
const minLoginBytes = 1 << 20

// minMemoryTotal is the least limits.max_inbound_total and
// max_outbound_total (0 is their default).
const minMemoryTotal = 1 << 20

// minSubscriptionBytes is the least limits.subscription_bytes: a quarter
// holds 58 subscriptions of proto.MaxURILen bytes, each counted its URI
// and route's 384 bytes (1,039,360 bytes for the four quarters; it said
// 60 while they were counted 256, and stays 1 MiB so that a configuration
// that ran before still runs).
const minSubscriptionBytes = 1 << 20

// minRegistrationBytes is the least limits.registration_bytes: a quarter
// holds 56 registrations of proto.MaxURILen bytes, each counted its URI
// and route's 512 bytes (1,032,192 bytes for the four quarters).
const minRegistrationBytes = 1 << 20

// validateAddresses refuses two sockets of the configuration on one
// address (the same port on the same host, or on a host and on all
// interfaces), which otherwise fails only when the second one binds.
// The event loops' listeners (the WAMP listeners, and the gateway when it
// runs on the loops' HTTP lane) are refused on one port whatever their
// hosts: the loops key their listeners by port, and refused two on one
// port only when the router started ("loop: two listeners on port N",
// which check-config passed). Port 0 (any free port) never collides.
func (c *config) validateAddresses(errs *[]error) {
	type use struct {
		name       string
		path       []any
		host, port string
		loop       bool // one of the event loops' listeners
	}
	var uses []use
	add := func(addr, name string, loop bool, path ...any) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil || p == "0" || listenAddrProblem(addr) != "" {
			return // malformed ones are reported where they are checked
		}
		if h == "localhost" {
			h = "127.0.0.1"
		}
		uses = append(uses, use{name, path, h, p, loop})
	}
	for i, l := range c.Listeners {
		add(l.Address, fmt.Sprintf("listeners[%d].address", i), true, "listeners", i, "address")
	}
	if !c.gatewayOff() {
		add(c.Gateway.Listen, "gateway.listen", c.gatewayOnLane(), "gateway", "listen")
	}
	add(c.Mesh.Cluster.Listen, "mesh.cluster.listen", false, "mesh", "cluster", "listen")
	add(c.Mesh.Leaf.Listen, "mesh.leaf.listen", false, "mesh", "leaf", "listen")
	wildcard := func(h string) bool {
		ip, err := netip.ParseAddr(h)
		return h == "" || (err == nil && ip.IsUnspecified())
	}
	for j, b := range uses {
		for _, a := range uses[:j] {
			if a.port != b.port {
				continue
			}
			msg := fmt.Sprintf("%s %s uses the port of %s %s", b.name, net.JoinHostPort(b.host, b.port), a.name, net.JoinHostPort(a.host, a.port))
			switch {
			case a.host == b.host || wildcard(a.host) || wildcard(b.host):
			case a.loop && b.loop:
				msg += " (the event loops take one listener per port, whatever its host"
				if a.name == "gateway.listen" || b.name == "gateway.listen" {
					msg += ", and serve the gateway's port unless gateway.event_loop is false"
				}
				msg += ")"
			default:
				continue
			}
			c.errAt(errs, msg, b.path...)
			break
		}
	}
}

// listenAddrProblem says what is wrong with addr, an address to listen
// on (host:port), as the router would find out only when it binds it: ""
// when nothing. The port is a decimal number from 0 (any free port) to
// 65535, not a service name ("http"); the host is empty (every
// interface), an IP address, or a host name (resolved when the router
// starts), not a malformed IP address such as 999.0.0.1.
func listenAddrProblem(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "is not host:port"
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Sprintf("has a bad port %q (want a number from 0 to 65535)", port)
	}
	if host != "" && !validListenHost(host) {
		return fmt.Sprintf("has a bad host %q (want an IP address, a host name, or none for every interface)", host)
	}
	return ""
}

// validListenHost reports whether h is an IP address (an IPv6 one with
// its zone, fe80::1%eth0) or a host name: dot-separated labels of
// letters, digits, '-' (not first or last) and '_' (which Go's resolver
// takes, as names in /etc/hosts may have it), of at most 63 bytes, at
// most 253 in all, with a trailing dot or not. The last label is not all
// digits: such a name is an IP address written wrong (RFC 1123, 2.1).
func validListenHost(h string) bool {
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	digits := false
	for l := range strings.SplitSeq(h, ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		digits = true
		for _, b := range []byte(l) {
			switch {
			case b >= '0' && b <= '9':
			case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b == '-', b == '_':
				digits = false
			default:
				return false
			}
		}
	}
	return !digits // the last label's
}

// loops returns the number of event loops.
func (c *config) loops() int {
	if c.Loops > 0 {
		return c.Loops
	}
	return runtime.GOMAXPROCS(0)
}

// routeConfig builds the router's configuration; o (may be nil) is the
// OAuth2 server whose access tokens are WAMP tickets.
//
// A payload converted to a peer's serializer may be twice the largest
// message the router takes in (base64 makes JSON binaries a third longer),
// at least 1 MiB: what grows more (CBOR half floats or control characters,
// as JSON) is refused (route.Config.MaxConverted).
func maxConverted(maxMessage int) int {
	if maxMessage <= 0 {
		maxMessage = 16 << 20
	}
	return max(2*maxMessage, 1<<20)
}

func (c *config) routeConfig(log *slog.Logger, o *oauthServer) (route.Config, error) {
	realms, err := c.realmConfigsWith(o)
	if err != nil {
		return route.Config{}, err
	}
	decoy, err := decoySecret(c.DataDir)
	if err != nil {
		return route.Config{}, err
	}
	rc := route.Config{
		Realms:             realms,
		Shards:             c.loops(),
		CallTimeout:        time.Duration(c.RPC.CallTimeout),
		MaxCallTimeout:     time.Duration(c.RPC.MaxCallTimeout),
		HelloTimeout:       time.Duration(c.Limits.HelloTimeout),
		MaxPendingCalls:    c.Limits.CallsInFlight,
		MaxRegistrations:   c.Limits.Registrations,
		MaxSubscriptions:   c.Limits.Subscriptions,
		InProcessURIs:      []string{gateway.ReservedPrefix},
		MaxRetainedBytes:   int64(c.Limits.RetainedBytes),
		MaxConverted:       maxConverted(int(c.Limits.MaxMessage)),
		MaxMeshInvocations: c.Mesh.MaxInvocations,
		MaxMeshCalls:       c.Mesh.CallsInFlight,
		AuthLimits:         c.authLimits(),
		DecoySecret:        decoy,
		Agent:              "edgewamp-" + version,
		Logger:             log,
		Now:                clock,

		MaxWildcardRegistrations:      c.Limits.WildcardRegistrations,
		MaxWildcardSubscriptions:      c.Limits.WildcardSubscriptions,
		MaxRealmWildcardRegistrations: c.Limits.RealmWildcardRegistrations,
		MaxRealmWildcardSubscriptions: c.Limits.RealmWildcardSubscriptions,

		MaxRetainedPerPublisher:      c.Limits.RetainedEventsPerPublisher,
		MaxRetainedBytesPerPublisher: int64(c.Limits.RetainedBytesPerPublisher),
		MaxTestamentBytes:            int64(c.Limits.TestamentBytes),
		MaxLoginBytes:                int64(c.Limits.LoginBytes),
		MaxSubscriptionBytes:         int64(c.Limits.SubscriptionBytes),
		MaxRegistrationBytes:         int64(c.Limits.RegistrationBytes),
		MaxCallsTotal:                int64(c.Limits.CallsInFlightTotal),
	}
	return rc, nil
}

// clock is the one clock of the router and the transports (route.Config.Now,
// and loop.Options.Now once loop has it).
var clock = time.Now

// validateAuthFailures checks limits.auth_failures.
func (c *config) validateAuthFailures(errs *[]error) {
	a := &c.Limits.AuthFailures
	for _, f := range []struct {
		v    int
		name string
	}{{a.DelayAfter, "delay_after"}, {a.BlockAfter, "block_after"}, {a.AddressBlockAfter, "address_block_after"}, {a.MaxOpenChallenges, "max_open_challenges"}} {
		if f.v < 0 {
			c.errAt(errs, "limits.auth_failures."+f.name+" must not be negative", "limits", "auth_failures", f.name)
		}
	}
	blockAfter := a.BlockAfter
	if blockAfter == 0 {
		blockAfter = route.DefaultAuthBlockAfter
	}
	if a.AddressBlockAfter > 0 && a.AddressBlockAfter < blockAfter {
		c.errAt(errs, "limits.auth_failures.address_block_after must be at least block_after (the failures of one authid count for its address too)", "limits", "auth_failures", "address_block_after")
	}
	for i, s := range a.Exempt {
		if why := zonedProxy(s); why != "" {
			c.errAt(errs, fmt.Sprintf("limits.auth_failures.exempt[%d]: %s", i, why), "limits", "auth_failures", "exempt", i)
		} else if _, err := parsePrefix(s); err != nil {
			c.errAt(errs, fmt.Sprintf("limits.auth_failures.exempt[%d]: %q is not a network (like 10.0.0.0/8 or fd00::/8) or an address", i, s),
				"limits", "auth_failures", "exempt", i)
		}
	}
}

// durationFloor is a duration key's least value other than 0: below it
// the router is useless or works against itself (a timeout that fails
// every call, a lockout that ends at once), and no deployment needs it.
type durationFloor struct {
	v     duration
	least time.Duration
	why   string
	zero  string // what 0 means: "its default" when empty
	path  []any
}

// durationFloors refuses each value of fs that is above 0 and below its
// floor, naming the key (from its path: gateway.webhooks[0].backoff), the
// floor and why.
func (c *config) durationFloors(errs *[]error, fs []durationFloor) {
	for _, f := range fs {
		v := time.Duration(f.v)
		if v <= 0 || v >= f.least {
			continue
		}
		var key strings.Builder
		for i, p := range f.path {
			switch p := p.(type) {
			case int:
				fmt.Fprintf(&key, "[%d]", p)
			default:
				if i > 0 {
					key.WriteByte('.')
				}
				fmt.Fprint(&key, p)
			}
		}
		zero := cmp.Or(f.zero, "its default")
		c.errAt(errs, fmt.Sprintf("%s must be 0 (%s) or at least %s, not %s (%s)", key.String(), zero, f.least, v, f.why), f.path...)
	}
}

// parsePrefix parses a CIDR network, or a single address as its /32 or
// /128.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// networks parses a validated list of networks (trusted_proxies,
// limits.auth_failures.exempt), each IPv4-mapped one as its IPv4 network
// (unmapPrefix).
func networks(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := parsePrefix(s); err == nil {
			out = append(out, unmapPrefix(p))
		}
	}
	return out
}

// unmapPrefix returns an IPv4-mapped IPv6 network (::ffff:10.0.0.0/104)
// as the IPv4 one it is (10.0.0.0/8): the transports see IPv4 peers, on a
// dual-stack socket too, as IPv4.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// authLimits builds the brute-force limiter's settings (validated).
func (c *config) authLimits() route.AuthLimits {
	a := c.Limits.AuthFailures
	l := route.AuthLimits{
		DelayAfter:        a.DelayAfter,
		BlockAfter:        a.BlockAfter,
		AddressBlockAfter: a.AddressBlockAfter,
		Window:            time.Duration(a.Window),
		Lockout:           time.Duration(a.Lockout),
		MaxOpenChallenges: a.MaxOpenChallenges,
	}
	// Unmapped as trusted_proxies are: the limiters compare a peer's
	// address unmapped, so ::ffff:10.0.0.0/104 exempted no IPv4 peer.
	l.Exempt = networks(a.Exempt)
	return l
}

// validOrigin reports whether o is a websocket.allowed_origins entry that
// can match an Origin header: *, null, or scheme://host[:port] with at
// most a trailing /. A browser's Origin always has the scheme, so an entry
// without one (app.example.com) was taken and never matched.
func validOrigin(o string) bool {
	if o == "*" || o == "null" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Scheme != "" && u.Host != "" && u.User == nil && (u.Path == "" || u.Path == "/") &&
		!u.ForceQuery && u.RawQuery == "" && u.Fragment == "" && u.Opaque == "" && !strings.Contains(u.Host, "*")
}

// canonicalOrigin is an allowed_origins entry as a browser would send it:
// lower case, without a trailing /, without its scheme's default port (a
// browser leaves :443 out of https://host:443, so the entry never
// matched).
func canonicalOrigin(o string) string {
	o = strings.ToLower(strings.TrimSuffix(o, "/"))
	switch {
	case strings.HasPrefix(o, "https://") && strings.HasSuffix(o, ":443"):
		return strings.TrimSuffix(o, ":443")
	case strings.HasPrefix(o, "http://") && strings.HasSuffix(o, ":80"):
		return strings.TrimSuffix(o, ":80")
	}
	return o
}

// loopOptions builds the transport options; TLS certificates are loaded
// here, so errors name the file. It returns the certificates too, for
// reload (SIGHUP re-reads them: tlsreload.go).
func (c *config) loopOptions(log *slog.Logger) (loop.Options, []*loop.CertFile, error) {
	o := loop.Options{
		WSPath:           c.WebSocket.Path,
		HealthPath:       c.WebSocket.HealthPath,
		MaxMessage:       int(c.Limits.MaxMessage),
		MaxInboundTotal:  int64(c.Limits.MaxInboundTotal),
		MaxOutboundTotal: int64(c.Limits.MaxOutboundTotal),
		MaxHandshake:     int(c.Limits.MaxHandshake),
		HandshakeTimeout: time.Duration(c.Limits.HandshakeTimeout),
		MaxTLSHandshakes: c.Limits.MaxTLSHandshakes,
		PingInterval:     time.Duration(c.Keepalive.Interval),
		PingTimeout:      time.Duration(c.Keepalive.Timeout),
		RawSocketPings:   c.Keepalive.RawSocketPings == "always",
		IdleTimeout:      time.Duration(c.Limits.IdleTimeout),
		HighWater:        int(c.Limits.HighWater),
		HardLimit:        int(c.Limits.HardLimit),
		Logger:           log,
		Now:              clock, // the function route.Config.Now gets: one clock
	}
	o.MaxTLSHandshakesPerAddress = c.Limits.MaxTLSHandshakesPerAddress
	if o.MaxTLSHandshakesPerAddress == 0 {
		o.MaxTLSHandshakesPerAddress = -1 // the file's 0 is no bound; loop.Options' zero is its default
	}
	o.MaxConnsPerAddress = c.Limits.MaxConnectionsPerAddress
	if o.MaxConnsPerAddress == 0 {
		o.MaxConnsPerAddress = -1 // likewise
	}
	switch c.Tuning.Flush {
	case "round":
		o.Flush = loop.FlushRound
	case "traffic":
		o.Flush = loop.FlushTraffic
	}
	o.IOUring, _ = loop.ParseIOUringMode(c.Tuning.IOUring) // validated
	o.Park = c.withMesh(c.Tuning.Park)
	if len(c.WebSocket.AllowedOrigins) > 0 {
		// A browser sends the origin in lower case, without a path or
		// its scheme's default port: an entry's case, a trailing / and
		// :443 (https) or :80 (http) do not matter.
		origins := make([]string, len(c.WebSocket.AllowedOrigins))
		for i, a := range c.WebSocket.AllowedOrigins {
			origins[i] = canonicalOrigin(a)
		}
		o.CheckOrigin = func(origin []byte) bool {
			for _, a := range origins {
				if a == "*" || strings.EqualFold(a, string(origin)) {
					return true
				}
			}
			return false
		}
	}
	var certs []*loop.CertFile
	for _, l := range c.Listeners {
		lo := loop.Listener{Addr: l.Address, Transport: loop.Transport(l.Transport), MaxConns: l.MaxConnections}
		lo.TrustedProxies = networks(l.TrustedProxies)
		if l.TLS != nil {
			cf, err := loop.LoadCertFile(l.TLS.Cert, l.TLS.Key)
			if err != nil {
				return o, nil, fmt.Errorf("listener %s: %w", l.Address, err)
			}
			if cf.Expired() {
				log.Warn("TLS certificate is not valid now; clients will refuse it", "listener", l.Address, "cert", l.TLS.Cert,
					"not_before", cf.Certificate().Leaf.NotBefore, "not_after", cf.Certificate().Leaf.NotAfter)
			}
			lo.TLS = cf.TLSConfig()
			certs = append(certs, cf)
		}
		o.Listeners = append(o.Listeners, lo)
	}
	return o, certs, nil
}

// checkStart makes, for check-config, the checks that run makes only when
// the router starts (a reload does not redo them: listener and mesh
// changes need a restart): the listeners' and the gateway's certificates
// load, and the mesh's options pass (node name, URLs, credentials, TLS
// files).
func (c *config) checkStart() error {
	var errs []error
	// Every listener's pair, each at its line, as loopOptions loads them
	// (it stops at the first: check-config named no line, and only the
	// first listener whose pair does not load).
	for i, l := range c.Listeners {
		if l.TLS == nil {
			continue
		}
		if _, err := loop.LoadCertFile(l.TLS.Cert, l.TLS.Key); err != nil {
			c.errAt(&errs, fmt.Sprintf("listener %s: %v", l.Address, err), "listeners", i, "tls")
		}
	}
	if t := c.Gateway.TLS; t != nil && !c.gatewayOff() {
		if _, err := loop.LoadCertFile(t.Cert, t.Key); err != nil {
			c.errAt(&errs, fmt.Sprintf("gateway: %v", err), "gateway", "tls")
		}
	}
	c.resolveListenHosts(&errs)
	c.writableDirs(&errs)
	errs = c.meshErrs(errs)
	return errors.Join(errs...)
}

// resolveListenHosts refuses, for check-config, a listen address whose
// host name does not resolve: run resolves it when it binds, and failed
// there while check-config said ok (validate checks its form only, as a
// reload must not wait on the resolver). A name is looked up once, within
// 5 s.
func (c *config) resolveListenHosts(errs *[]error) {
	type addr struct {
		v, name string
		path    []any
	}
	addrs := make([]addr, 0, len(c.Listeners)+3)
	for i, l := range c.Listeners {
		addrs = append(addrs, addr{l.Address, fmt.Sprintf("listeners[%d].address", i), []any{"listeners", i, "address"}})
	}
	if !c.gatewayOff() {
		addrs = append(addrs, addr{c.Gateway.Listen, "gateway.listen", []any{"gateway", "listen"}})
	}
	addrs = append(addrs, addr{c.Mesh.Cluster.Listen, "mesh.cluster.listen", []any{"mesh", "cluster", "listen"}},
		addr{c.Mesh.Leaf.Listen, "mesh.leaf.listen", []any{"mesh", "leaf", "listen"}})
	failed := map[string]error{}
	for _, a := range addrs {
		h, _, err := net.SplitHostPort(a.v)
		if err != nil || h == "" || listenAddrProblem(a.v) != "" {
			continue // none, every interface, or malformed (validate's)
		}
		if _, err := netip.ParseAddr(h); err == nil {
			continue
		}
		err, seen := failed[h]
		if !seen {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = net.DefaultResolver.LookupHost(ctx, h)
			cancel()
			failed[h] = err
		}
		if err != nil {
			c.errAt(errs, fmt.Sprintf("%s %q: host %q does not resolve (%v)", a.name, a.v, h, err), a.path...)
		}
	}
}

// meshErrs appends to errs the mesh's option errors (checkMesh), each at
// its key's line or naming its flag; none when the router runs alone.
func (c *config) meshErrs(errs []error) []error {
	if c.Mesh.enabled() {
		if err := c.checkMesh(); err != nil {
			for _, e := range strings.Split(err.Error(), "\n") {
				c.errAt(&errs, meshKeyNames(e), c.meshErrPath(e)...)
			}
		}
	}
	return errs
}

// meshKeyRE matches, in an error of package edge, the keys it names by
// its own options' names: the configuration file's are under mesh:.
var meshKeyRE = regexp.MustCompile(`(^|[^\w.])(cluster\.(?:name|routes|listen|advertise)|leaf\.(?:listen|remotes|advertise)|nats_url|ping_interval|heartbeat|peer_timeout|gather_timeout|max_pings_out|max_outbound|max_inbound|max_interest|credentials|node name)\b`)

// meshKeyNames rewrites an error of package edge ("edge: cluster.routes:
// ...") to name the keys as the configuration file does
// ("mesh.cluster.routes: ..."), outside the quoted values it shows.
// Before, check-config and run named them by edge's names, which the file
// does not have: a user searching it for "cluster.routes" found nothing
// at the top level.
func meshKeyNames(e string) string {
	e = strings.TrimPrefix(e, "edge: ")
	e = strings.Replace(e, "excludes cluster and leaf", "excludes mesh.cluster and mesh.leaf", 1)
	e = strings.Replace(e, "exceed the heartbeat", "exceed heartbeat", 1)
	var b strings.Builder
	for e != "" {
		i := strings.IndexByte(e, '"')
		if i < 0 {
			i = len(e)
		}
		b.WriteString(meshKeyRE.ReplaceAllStringFunc(e[:i], func(m string) string {
			sub := meshKeyRE.FindStringSubmatch(m)
			if sub[2] == "node name" {
				return sub[1] + "mesh.node"
			}
			return sub[1] + "mesh." + sub[2]
		}))
		e = e[i:]
		if e == "" {
			break
		}
		q, err := strconv.QuotedPrefix(e)
		if err != nil {
			b.WriteString(e)
			break
		}
		b.WriteString(q)
		e = e[len(q):]
	}
	return b.String()
}

// meshErrPath finds the mesh: key an error of checkMesh is about, by the
// key it starts with ("edge: ping_interval ...", "mesh.tls.ca: ..."), so
// that the error names that key's line (or its flag): before, none had a
// line. It falls back to the nearest key the file has, then to mesh:.
func (c *config) meshErrPath(e string) []any {
	e = strings.TrimPrefix(e, "edge: ")
	word, _, _ := strings.Cut(e, " ")
	word = strings.TrimPrefix(strings.TrimSuffix(word, ":"), "mesh.")
	switch {
	case strings.HasPrefix(e, "node name"):
		word = "node"
	case strings.Contains(e, "nkey seed"), strings.HasPrefix(e, "credentials"):
		word = "credentials"
	}
	path := []any{"mesh"}
	for _, k := range strings.Split(word, ".") {
		if k == "" || strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_") != "" {
			break
		}
		path = append(path, k)
	}
	for len(path) > 1 && c.line(path...) == 0 {
		if _, ok := c.flags[pathKey(path...)]; ok {
			break
		}
		path = path[:len(path)-1]
	}
	return path
}

// newLogger builds the process logger.
func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	switch level {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	}
	ho := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	return slog.New(slog.NewTextHandler(w, ho))
}
