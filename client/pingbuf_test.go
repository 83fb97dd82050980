package client

import (
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgewamp/edgewamp/proto"
)

// A RawSocket PING is read into the session's read buffer, as a message
// is, and answered with a PONG echoing it; a large one's buffer (the
// router's PING may carry up to the client's receive limit, 16 MiB by
// default) was then kept until the next frame came, on an idle session
// for ever, where the buffer of a message larger than 4 MiB is given back
// once the message is handled (README: "A session keeps no buffer of a
// message larger than 4 MiB once it is handled ..., also when no other
// message follows"). PONGs likewise.
func TestIdleSessionHoldsNoLargePing(t *testing.T) {
	for _, typ := range []byte{rsFramePing, rsFramePong} {
		s, c := setup(t, "rs", proto.MsgPack)
		before := heapInUse()
		payload := make([]byte, 8<<20)
		noErr(t, "write", c.writeRS(typ, payload))
		payload = nil
		if typ == rsFramePing {
			if n := len(c.expectPong()); n != 8<<20 {
				t.Fatalf("PONG of %d bytes, want %d", n, 8<<20)
			}
			c.pong = nil
		}
		// The client has read the frame once no byte of it waits in
		// either kernel: a PONG has no answer to wait for, and a fixed
		// sleep (100 ms) was too short under CI load (8.0 MiB "held"
		// while the client was still reading it). Then the buffer goes
		// at once (release); held is taken until it does, up to wait.
		readAll(t, s, c)
		var held int64
		for end := time.Now().Add(wait); ; time.Sleep(10 * time.Millisecond) {
			held = int64(heapInUse()) - int64(before)
			if held <= 2<<20 || time.Now().After(end) {
				break
			}
		}
		t.Logf("held after an 8 MiB frame of type %d: %.1f MiB", typ, float64(held)/(1<<20))
		if held > 2<<20 {
			t.Errorf("an idle session holds %.1f MiB after an 8 MiB frame of type %d (PING 1, PONG 2); want under 2 MiB", float64(held)/(1<<20), typ)
		}
		if err := s.Err(); err != nil {
			t.Fatalf("session ended: %v", err)
		}
	}
}

// readAll waits until no byte the peer c wrote is left unread by the
// session s's reader: the peer's socket has nothing unacknowledged and the
// client's socket nothing unread (bytes in the reader's bufio buffer are
// not counted: a large frame is read past it). It fails when no byte moves
// for wait, not at a fixed time from the start: under CI's load (18-26 on
// 2 cores) a client under -race took over 5 s to read a few MiB.
func readAll(t *testing.T, s *Session, c *peerConn) {
	t.Helper()
	queued := func(conn net.Conn, req uint) int {
		rc, err := conn.(*net.TCPConn).SyscallConn()
		noErr(t, "SyscallConn", err)
		n, ierr := 0, error(nil)
		noErr(t, "Control", rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), req) }))
		noErr(t, "ioctl", ierr)
		return n
	}
	var client net.Conn // static after Dial
	switch tr := s.tr.(type) {
	case *rawSocket:
		client = tr.conn
	case *webSocket:
		client = tr.conn
		if u, ok := client.(*upgradeConn); ok {
			client = u.Conn
		}
	}
	left := -1
	for end := time.Now().Add(wait); ; time.Sleep(5 * time.Millisecond) {
		out, in := queued(c.conn, unix.SIOCOUTQ), queued(client, unix.SIOCINQ)
		if out+in == 0 {
			return
		}
		if left < 0 || out+in < left {
			left, end = out+in, time.Now().Add(wait)
		}
		if time.Now().After(end) {
			t.Fatalf("the client read nothing for %v: %d bytes unacknowledged, %d unread", wait, out, in)
		}
	}
}
