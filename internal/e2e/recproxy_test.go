package e2e

import (
	"bytes"
	"encoding/base64"
	"io"
	"net"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/internal/xmpp"
)

// recordingProxy forwards the TCP connections it accepts to target and
// keeps every byte of each connection, each direction in its own stream
// (so that nothing is missed where two reads met).
type recordingProxy struct {
	l       net.Listener
	target  string
	mu      sync.Mutex
	streams []*bytes.Buffer // client->server and server->client of each connection
	conns   []net.Conn
	wg      sync.WaitGroup
}

// newRecordingProxy listens on listen ("127.0.0.1:0" for a free port)
// and forwards to target until the test ends.
func newRecordingProxy(t testing.TB, listen, target string) *recordingProxy {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{l: l, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is where clients connect.
func (p *recordingProxy) Addr() string { return p.l.Addr().String() }

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
		up, down := &bytes.Buffer{}, &bytes.Buffer{}
		p.mu.Lock()
		p.streams = append(p.streams, up, down)
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(s, c, up)
		go p.copy(c, s, down)
	}
}

// recWriter appends to one stream under the proxy's lock.
type recWriter struct {
	p   *recordingProxy
	buf *bytes.Buffer
}

func (w recWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.buf.Write(b)
}

func (p *recordingProxy) copy(dst, src net.Conn, rec *bytes.Buffer) {
	defer p.wg.Done()
	_, _ = io.Copy(io.MultiWriter(dst, recWriter{p, rec}), src)
	dst.Close()
	src.Close()
}

// recorded returns a copy of every stream so far: for each connection,
// what the client sent, then what it received.
func (p *recordingProxy) recorded() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]byte, len(p.streams))
	for i, b := range p.streams {
		out[i] = bytes.Clone(b.Bytes())
	}
	return out
}

// size is the number of bytes recorded, both ways.
func (p *recordingProxy) size() int {
	n := 0
	for _, s := range p.recorded() {
		n += len(s)
	}
	return n
}

// datagramRE matches a datagram element or a batch of datagrams
// (docs/xmpp.md: <d> one packet, <b> several, length-prefixed) as our
// client writes it (double quotes) and as Prosody relays it (single
// quotes). Decoding the base64 is enough to search a batch's packets.
var datagramRE = regexp.MustCompile(`<(?:d xmlns=["']` + regexp.QuoteMeta(xmpp.NSDatagram) + `["']>([A-Za-z0-9+/=]*)</d>|b xmlns=["']` +
	regexp.QuoteMeta(xmpp.NSBatch) + `["']>([A-Za-z0-9+/=]*)</b>)`)

// decodedDatagrams returns the payloads of the datagram elements in a
// recorded stream, decoded.
func decodedDatagrams(stream []byte) [][]byte {
	var out [][]byte
	for _, m := range datagramRE.FindAllSubmatch(stream, -1) {
		if b, err := base64.StdEncoding.DecodeString(string(m[1]) + string(m[2])); err == nil {
			out = append(out, b)
		}
	}
	return out
}

// leaks returns the secrets found in the streams, raw or in a decoded
// datagram.
func leaks(streams [][]byte, secrets [][]byte) [][]byte {
	corpus := slices.Clone(streams)
	for _, st := range streams {
		corpus = append(corpus, decodedDatagrams(st)...)
	}
	var found [][]byte
	for _, s := range secrets {
		if slices.ContainsFunc(corpus, func(c []byte) bool { return bytes.Contains(c, s) }) {
			found = append(found, s)
		}
	}
	return found
}
