package main

import (
	"bytes"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

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

	root *yaml.Node // for line numbers in validation errors
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

type listenerConfig struct {
	Address        string     `yaml:"address"`
	Transport      string     `yaml:"transport"`
	MaxConnections int        `yaml:"max_connections"`
	TLS            *tlsConfig `yaml:"tls"`
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
	HelloTimeout     duration `yaml:"hello_timeout"`
	IdleTimeout      duration `yaml:"idle_timeout"`
	HighWater        size     `yaml:"high_water"`
	HardLimit        size     `yaml:"hard_limit"`
	CallsInFlight    int      `yaml:"calls_in_flight"`
	Registrations    int      `yaml:"registrations"`
	Subscriptions    int      `yaml:"subscriptions"`
}

type keepaliveConfig struct {
	Interval duration `yaml:"interval"`
	Timeout  duration `yaml:"timeout"`
}

type rpcConfig struct {
	CallTimeout    duration `yaml:"call_timeout"`
	MaxCallTimeout duration `yaml:"max_call_timeout"`
}

type tuningConfig struct {
	Flush string `yaml:"flush"`
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
}

type permissionConfig struct {
	URI      string   `yaml:"uri"`
	Match    string   `yaml:"match"`
	Allow    []string `yaml:"allow"`
	Disclose []string `yaml:"disclose"`
}

// duration is a time.Duration written as "10s", "1m30s".
type duration time.Duration

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration like \"10s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration (like \"10s\" or \"1m30s\")", n.Line, n.Value)
	}
	*d = duration(v)
	return nil
}

// size is a byte count written as 1024, "8KiB", "16MiB", "1GiB", "4MB".
type size int

func (s *size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a size like \"16MiB\"", n.Line)
	}
	v, err := parseSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %v", n.Line, err)
	}
	*s = size(v)
	return nil
}

func parseSize(s string) (int, error) {
	units := []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := 1
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.Atoi(t)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size (like 1024, \"8KiB\" or \"16MiB\")", s)
	}
	return v * mult, nil
}

// loadConfig reads a configuration: the embedded default when path is "".
func loadConfig(path string) (*config, error) {
	data, name := defaultConfig, "embedded default"
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		data, name = b, path
	}
	c, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return c, nil
}

// parseConfig decodes strictly and validates.
func parseConfig(data []byte) (*config, error) {
	var c config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the configuration is empty")
		}
		return nil, cleanYAMLError(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err == nil {
		c.root = &root
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	if _, err := c.realmConfigs(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cleanYAMLError turns "yaml: unmarshal errors:\n  line 3: field x not found
// in type main.config" into one readable line per problem.
func cleanYAMLError(err error) error {
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
		}
		lines = append(lines, l)
	}
	return errors.New(strings.Join(lines, "; "))
}

// line finds the line of a key in the document: path elements are map keys
// (string) or sequence indexes (int). It returns 0 when not found.
func (c *config) line(path ...any) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n := c.root.Content[0]
	line := n.Line
	for _, p := range path {
		switch k := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
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
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || k >= len(n.Content) {
				return line
			}
			n = n.Content[k]
			line = n.Line
		}
	}
	return line
}

func (c *config) errAt(errs *[]error, msg string, path ...any) {
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
		if _, _, err := net.SplitHostPort(l.Address); err != nil {
			c.errAt(&errs, fmt.Sprintf("listeners[%d].address %q is not host:port", i, l.Address), "listeners", i, "address")
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
	}
	if p := c.WebSocket.Path; p != "" && !strings.HasPrefix(p, "/") {
		c.errAt(&errs, "websocket.path must start with /", "websocket", "path")
	}
	if c.Limits.MaxMessage > 16<<20 {
		c.errAt(&errs, "limits.max_message is at most 16MiB", "limits", "max_message")
	}
	if c.Limits.MaxMessage != 0 && c.Limits.MaxMessage < 512 {
		c.errAt(&errs, "limits.max_message is at least 512 bytes", "limits", "max_message")
	}
	for _, l := range []struct {
		v    int
		name string
	}{{c.Limits.CallsInFlight, "calls_in_flight"}, {c.Limits.Registrations, "registrations"}, {c.Limits.Subscriptions, "subscriptions"}} {
		if l.v < 0 {
			c.errAt(&errs, "limits."+l.name+" must not be negative", "limits", l.name)
		}
	}
	if c.Limits.HardLimit != 0 && c.Limits.HighWater != 0 && c.Limits.HardLimit < c.Limits.HighWater {
		c.errAt(&errs, "limits.hard_limit must not be below limits.high_water", "limits", "hard_limit")
	}
	switch c.Tuning.Flush {
	case "", "adaptive", "round", "traffic":
	default:
		c.errAt(&errs, "tuning.flush must be adaptive, round or traffic, not "+strconv.Quote(c.Tuning.Flush), "tuning", "flush")
	}
	if c.RPC.MaxCallTimeout != 0 && c.RPC.CallTimeout > c.RPC.MaxCallTimeout {
		c.errAt(&errs, "rpc.call_timeout exceeds rpc.max_call_timeout", "rpc", "call_timeout")
	}
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
	return errors.Join(errs...)
}

// loops returns the number of event loops.
func (c *config) loops() int {
	if c.Loops > 0 {
		return c.Loops
	}
	return runtime.GOMAXPROCS(0)
}

// routeConfig builds the router's configuration.
func (c *config) routeConfig(log *slog.Logger) (route.Config, error) {
	realms, err := c.realmConfigs()
	if err != nil {
		return route.Config{}, err
	}
	rc := route.Config{
		Realms:           realms,
		Shards:           c.loops(),
		CallTimeout:      time.Duration(c.RPC.CallTimeout),
		MaxCallTimeout:   time.Duration(c.RPC.MaxCallTimeout),
		HelloTimeout:     time.Duration(c.Limits.HelloTimeout),
		MaxPendingCalls:  c.Limits.CallsInFlight,
		MaxRegistrations: c.Limits.Registrations,
		MaxSubscriptions: c.Limits.Subscriptions,
		MaxRetainedBytes: int64(c.Limits.RetainedBytes),
		Agent:            "edgewamp-" + version,
		Logger:           log,
	}
	return rc, nil
}

// loopOptions builds the transport options; TLS certificates are loaded
// here, so errors name the file.
func (c *config) loopOptions(log *slog.Logger) (loop.Options, error) {
	o := loop.Options{
		WSPath:           c.WebSocket.Path,
		HealthPath:       c.WebSocket.HealthPath,
		MaxMessage:       int(c.Limits.MaxMessage),
		MaxInboundTotal:  int64(c.Limits.MaxInboundTotal),
		MaxOutboundTotal: int64(c.Limits.MaxOutboundTotal),
		MaxHandshake:     int(c.Limits.MaxHandshake),
		HandshakeTimeout: time.Duration(c.Limits.HandshakeTimeout),
		PingInterval:     time.Duration(c.Keepalive.Interval),
		PingTimeout:      time.Duration(c.Keepalive.Timeout),
		IdleTimeout:      time.Duration(c.Limits.IdleTimeout),
		HighWater:        int(c.Limits.HighWater),
		HardLimit:        int(c.Limits.HardLimit),
		Logger:           log,
	}
	switch c.Tuning.Flush {
	case "round":
		o.Flush = loop.FlushRound
	case "traffic":
		o.Flush = loop.FlushTraffic
	}
	if origins := c.WebSocket.AllowedOrigins; len(origins) > 0 {
		o.CheckOrigin = func(origin []byte) bool {
			for _, a := range origins {
				if a == "*" || a == string(origin) {
					return true
				}
			}
			return false
		}
	}
	for _, l := range c.Listeners {
		lo := loop.Listener{Addr: l.Address, Transport: loop.Transport(l.Transport), MaxConns: l.MaxConnections}
		if l.TLS != nil {
			cert, err := tls.LoadX509KeyPair(l.TLS.Cert, l.TLS.Key)
			if err != nil {
				return o, fmt.Errorf("listener %s: TLS certificate: %w", l.Address, err)
			}
			lo.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		o.Listeners = append(o.Listeners, lo)
	}
	return o, nil
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
