package telehash

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// jsHarness drives testdata/js_mesh_peer.js.
type jsHarness struct {
	t      *testing.T
	stdin  io.WriteCloser
	events chan map[string]any
}

// startJSHarness starts the telehash-js harness, or skips (fails under
// GRD_REQUIRE_PEERS=1) when TELEHASH_JS_NODE_PATH is not set, as
// TestLiveTelehashJS does.
func startJSHarness(t *testing.T, ctx context.Context) *jsHarness {
	return startJSScript(t, ctx, "testdata/js_mesh_peer.js")
}

// startJSScript starts a telehash-js harness script.
func startJSScript(t *testing.T, ctx context.Context, script string) *jsHarness {
	nodePath := os.Getenv("TELEHASH_JS_NODE_PATH")
	if nodePath == "" {
		if os.Getenv("GRD_REQUIRE_PEERS") != "" {
			t.Fatal("TELEHASH_JS_NODE_PATH not set: the telehash-js peer is not installed (scripts/test installs it)")
		}
		t.Skip("TELEHASH_JS_NODE_PATH not set; scripts/test installs the telehash-js peer")
	}
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	p := &jsHarness{t: t, stdin: stdin, events: make(chan map[string]any, 16)}
	go func() {
		defer close(p.events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev map[string]any
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("js peer said %q", sc.Text())
				continue
			}
			p.events <- ev
		}
	}()
	return p
}

func (p *jsHarness) send(cmd any) {
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.t.Fatal(err)
	}
}

// wait returns the next event, which must be of type typ.
func (p *jsHarness) wait(typ string) map[string]any {
	p.t.Helper()
	select {
	case ev, ok := <-p.events:
		if !ok {
			p.t.Fatalf("js peer exited waiting for %q", typ)
		}
		if ev["event"] != typ {
			p.t.Fatalf("js peer: %v, want %q", ev, typ)
		}
		return ev
	case <-time.After(20 * time.Second):
		p.t.Fatalf("js peer: no %q event", typ)
	}
	return nil
}

// echoStream copies everything a stream receives back to it.
func echoStream(ctx context.Context, c *Channel) {
	s, _ := NewStream(ctx, c)
	io.Copy(s, s)
	s.Close()
}

// TestMeshTelehashJS links telehash-js 0.4.18 to a Mesh and a Mesh to
// telehash-js, and moves data both ways on reliable channels: js "stream"
// channels echoed by Go, Go streams echoed by js, and a reliable "echo"
// channel opened by Go.
func TestMeshTelehashJS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	js := startJSHarness(t, ctx)
	ready := js.wait("ready")
	jsKeys := map[string]string{}
	for k, v := range ready["keys"].(map[string]any) {
		jsKeys[k] = v.(string)
	}
	jsHN := Hashname(ready["hashname"].(string))
	var jsInfo LinkInfo
	raw, _ := json.Marshal(map[string]any{"keys": jsKeys, "paths": ready["paths"]})
	json.Unmarshal(raw, &jsInfo)

	t.Run("js links to Go, js stream echoed by Go", func(t *testing.T) {
		opts := fastOpts()
		opts.Keepalive = 30 * time.Second // telehash-js's own schedule
		opts.LinkTimeout = time.Minute
		opts.Allow = func(h Hashname) bool { return h == jsHN }
		m := newTestMesh(t, "js-server", opts)
		m.Handle(StreamType, func(c *Channel) { echoStream(ctx, c) })
		js.send(map[string]any{"cmd": "link", "link": m.LinkInfo()})
		js.wait("link")
		if !m.Up(jsHN) {
			t.Fatal("telehash-js says up, the mesh does not")
		}
		// The path channel: telehash-js's request is answered with the
		// path it came from (not "unknown type"), and its answer to ours
		// tells us how it sees us.
		js.send(map[string]any{"cmd": "pathping"})
		pong := js.wait("pong")
		jsPath := jsInfo.Paths[0]
		if pong["err"] != nil || pong["path"] == nil {
			t.Fatalf("telehash-js's path request: %v", pong)
		}
		if p := pong["path"].(map[string]any); p["type"] != jsPath.Type || p["ip"] != jsPath.IP || p["port"] != float64(jsPath.Port) {
			t.Fatalf("our answer names %v, telehash-js is at %+v", p, jsPath)
		}
		waitUntil(t, ctx, "telehash-js answers our path request", func() bool {
			_, ok := m.SeenAs(jsHN)
			return ok
		})
		if got, _ := m.SeenAs(jsHN); got != m.Addr() {
			t.Fatalf("telehash-js sees us at %v, we are at %v", got, m.Addr())
		}
		t.Logf("path channel: telehash-js got %v, has pipes %v; it sees us at %v", pong["path"], pong["pipes"], m.Addr())
		js.send(map[string]any{"cmd": "stream", "size": 256 << 10})
		sent := js.wait("sent")
		done := js.wait("streamdone")
		if done["sha256"] != sent["sha256"] || done["bytes"] != sent["bytes"] {
			t.Fatalf("js sent %v, got back %v", sent, done)
		}
		t.Logf("telehash-js -> Go -> telehash-js stream: %v bytes intact; mesh %+v", done["bytes"], m.Stats())
	})

	t.Run("Go links to js, reliable echo and stream", func(t *testing.T) {
		opts := fastOpts()
		opts.Keepalive = 30 * time.Second
		opts.LinkTimeout = time.Minute
		m := newTestMesh(t, "js-client", opts)
		hn, err := m.Link(ctx, jsInfo)
		if err != nil || hn != jsHN {
			t.Fatalf("link to telehash-js: %s %v", hn, err)
		}
		// a reliable "echo" channel: Go -> js and js -> Go
		c, err := m.OpenChannel(ctx, jsHN, "echo", true, &ChannelPacket{Body: []byte("open")})
		if err != nil {
			t.Fatal(err)
		}
		var want, got []byte
		want = append(want, "open"...)
		for i := 0; i < 200; i++ {
			b := bytes.Repeat([]byte{byte(i)}, 1000)
			want = append(want, b...)
			if err := c.Send(ctx, &ChannelPacket{Body: b}); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.CloseWrite(ctx); err != nil {
			t.Fatal(err)
		}
		for {
			p, err := c.Receive(ctx)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("echo channel: %v after %d bytes", err, len(got))
			}
			got = append(got, p.Body...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("echo channel returned %d bytes, want %d", len(got), len(want))
		}
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("echo channel did not finish after both ends")
		}
		// a Go stream echoed by js's stream extension
		s, err := m.OpenStream(ctx, jsHN, map[string]string{"from": "go"})
		if err != nil {
			t.Fatal(err)
		}
		data := testData(256<<10, 9)
		sum, n, err := exchangeStreams(t, s, data)
		if err != nil || n != len(data) || sum != sha256.Sum256(data) {
			t.Fatalf("stream echo: %d bytes, %v", n, err)
		}
		ev := js.wait("echoed")
		if ev["sha256"] != hex.EncodeToString(sum[:]) {
			t.Fatalf("js saw %v", ev)
		}
		s.Close()
		t.Logf("Go -> telehash-js -> Go: echo channel %d bytes, stream %d bytes intact; mesh %+v", len(got), n, m.Stats())
	})
}
