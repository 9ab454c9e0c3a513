package xmpppipe

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// recordingProxy forwards TCP connections to target and records every
// byte both ways.
type recordingProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	buf    bytes.Buffer
	wg     sync.WaitGroup
}

func newRecordingProxy(t testing.TB, target string) *recordingProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { l.Close(); p.wg.Wait() })
	return p
}

func (p *recordingProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go p.copy(s, c)
		go p.copy(c, s)
	}
}

func (p *recordingProxy) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.Write(b)
}

func (p *recordingProxy) copy(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(io.MultiWriter(dst, p), src)
	dst.Close()
	src.Close()
}

func (p *recordingProxy) recorded() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.buf.Bytes())
}

// datagramRE matches a datagram (<d>) or a batch of them (<b>): decoding
// the base64 is enough to search a batch's packets.
var datagramRE = regexp.MustCompile(`<(?:d xmlns="` + regexp.QuoteMeta(xmpp.NSDatagram) + `">([A-Za-z0-9+/=]*)</d>|b xmlns="` +
	regexp.QuoteMeta(xmpp.NSBatch) + `">([A-Za-z0-9+/=]*)</b>)`)

// seen returns the recording and every datagram in it, decoded.
func seen(rec []byte) []byte {
	out := bytes.Clone(rec)
	for _, m := range datagramRE.FindAllSubmatch(rec, -1) {
		if b, err := base64.StdEncoding.DecodeString(string(m[1]) + string(m[2])); err == nil {
			out = append(out, b...)
		}
	}
	return out
}

// TestIntegrationServerSeesNoContent streams data full of ref names,
// object ids and file content between two nodes through a plaintext
// Prosody, recording the client-to-server traffic: none of it shows,
// neither raw nor in the decoded datagrams (E3X encrypts end to end).
func TestIntegrationServerSeesNoContent(t *testing.T) {
	srv := server(t)
	rec := newRecordingProxy(t, srv.Addr())
	ma := newMesh(t, nil)
	mb := newMesh(t, func(h telehash.Hashname) bool { return h == ma.Hashname() })
	mk := func(user string, m *telehash.Mesh, pin Pin) *Bridge {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, err := New(ctx, Config{
			Session: xmpp.Config{JID: srv.JID(user), Password: "pw-" + user, Server: rec.l.Addr().String(),
				TLS: xmpp.Plaintext, AllowPlaintext: true},
			Mesh: m, Pins: []Pin{pin}, NoBytestreams: true, Logger: logger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	ba := mk("alice", ma, Pin{JID: srv.JID("bob"), Hashname: mb.Hashname()})
	mk("bob", mb, Pin{JID: srv.JID("alice"), Hashname: ma.Hashname()})
	waitOnline(t, ba, mb.Hashname())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := ma.Link(ctx, telehash.LinkInfo{Keys: mb.LinkInfo().Keys}); err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{
		[]byte("refs/heads/secret-feature"),
		[]byte("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"),
		[]byte("TOP SECRET FILE CONTENT"),
	}
	payload := bytes.Repeat(bytes.Join(secrets, []byte("\n")), 2000)
	sendOver(t, ma, mb, payload)

	got := seen(rec.recorded())
	if !bytes.Contains(got, []byte("alice@localhost")) || len(datagramRE.FindAll(got, 10)) < 10 {
		t.Fatalf("the recording holds no XMPP session with datagrams (%d bytes)", len(got))
	}
	for _, s := range secrets {
		if bytes.Contains(got, s) {
			t.Fatalf("the server saw %q", s)
		}
	}
	// Control: a datagram sent in the clear would be found.
	if err := ba.Session().Send(context.Background(), ba.Online()[mb.Hashname()], []byte("CONTROL refs/heads/x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !bytes.Contains(seen(rec.recorded()), []byte("CONTROL refs/heads/x")) {
		if time.Now().After(deadline) {
			t.Fatal("the recording misses a clear datagram: the check is blind")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendOver sends payload from a to b on a stream and waits for b to
// have read it all.
func sendOver(t *testing.T, a, b *telehash.Mesh, payload []byte) {
	got := make(chan []byte, 1)
	b.Handle(telehash.StreamType, func(c *telehash.Channel) {
		s, err := telehash.NewStream(context.Background(), c)
		if err != nil {
			got <- nil
			return
		}
		d, _ := io.ReadAll(s)
		s.Close()
		got <- d
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(payload); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if d := <-got; !bytes.Equal(d, payload) {
		t.Fatalf("b read %d bytes, want %d", len(d), len(payload))
	}
	s.Close()
}
