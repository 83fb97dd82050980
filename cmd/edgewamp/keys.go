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

// maxIterations bounds a password hash's PBKDF2 iterations (100 times
// route.DefaultIterations): every ticket login and OAuth2 password grant
// for the user derives the key with as many (and, when most users' hashes
// have them, every ticket login of an unknown authid, which spends as
// much), about 2.6 µs each here, so a hash of 2,000,000,000, which was
// taken, made each attempt hold a CPU some 90 minutes. check-config, run
// and a reload refuse more, and so does passwd -iterations.
const maxIterations = 10_000_000

// maxPasswordLine bounds the password passwd reads from stdin.
const maxPasswordLine = 4096

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
	if *iterations < 1000 || *iterations > maxIterations {
		fmt.Fprintf(stderr, "edgewamp passwd: use from 1000 to %d iterations\n", maxIterations)
		return 2
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
		// At most maxPasswordLine bytes: the line was read without a
		// bound, and `edgewamp passwd < /dev/zero` (or a binary file given
		// by mistake) grew it until the machine ran out of memory.
		line, err := bufio.NewReader(io.LimitReader(stdin, maxPasswordLine+1)).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "edgewamp passwd: %v\n", err)
			return 1
		}
		if pw = strings.TrimRight(line, "\r\n"); len(pw) > maxPasswordLine {
			fmt.Fprintf(stderr, "edgewamp passwd: the first line of stdin is longer than %d bytes: not a password\n", maxPasswordLine)
			return 1
		}
	}
	if pw == "" {
		fmt.Fprintln(stderr, "edgewamp passwd: empty password")
		return 1
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
