package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/edgewamp/edgewamp/route"
)

// cmdPasswd hashes a password for the configuration file. It reads the
// password from the terminal without echo, or the first line of stdin when
// it is not a terminal.
func cmdPasswd(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("passwd", flag.ContinueOnError)
	iterations := fs.Int("iterations", route.DefaultIterations, "PBKDF2 iterations (WAMP-CRA clients derive the key with as many)")
	if code, ok := parseFlags(fs, "edgewamp passwd [-iterations N]   (reads the password from the terminal or stdin)", args, stdout, stderr); !ok {
		return code
	}
	if code, ok := noArgs(fs, "passwd", stderr); !ok {
		return code
	}
	var pw string
	if term.IsTerminal(int(stdin.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		b, err := term.ReadPassword(int(stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			fmt.Fprintf(stderr, "edgewamp passwd: %v\n", err)
			return 1
		}
		pw = string(b)
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "edgewamp passwd: %v\n", err)
			return 1
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	if pw == "" {
		fmt.Fprintln(stderr, "edgewamp passwd: empty password")
		return 1
	}
	if *iterations < 1000 {
		fmt.Fprintln(stderr, "edgewamp passwd: use at least 1000 iterations")
		return 2
	}
	p, err := route.HashPassword(pw, *iterations)
	if err != nil {
		fmt.Fprintf(stderr, "edgewamp passwd: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# paste under the user in the config file (serves ticket and salted wampcra):\npassword: %q\n", p.String())
	return 0
}

// cmdKeygen makes an Ed25519 key pair for cryptosign.
func cmdKeygen(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	if code, ok := parseFlags(fs, "edgewamp keygen   (an Ed25519 key pair for cryptosign)", args, stdout, stderr); !ok {
		return code
	}
	if code, ok := noArgs(fs, "keygen", stderr); !ok {
		return code
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintf(stderr, "edgewamp keygen: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# for the client (keep it secret): the private key seed, hex\nprivate_key: %s\n", hex.EncodeToString(priv.Seed()))
	fmt.Fprintf(stdout, "# for the router config, under the user:\ncryptosign_keys: [%q]\n", hex.EncodeToString(pub))
	return 0
}
