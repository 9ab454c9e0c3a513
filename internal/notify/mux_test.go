package notify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
)

func TestMuxRoundTrip(t *testing.T) {
	for _, m := range []Msg{
		{Kind: Caps}, {Kind: Caps, Text: "mux1"}, {Kind: Caps, Text: "mux1 x-2"},
		{Kind: Open, ID: "s1"}, {Kind: EOF, ID: "s1"},
		{Kind: Data, ID: "s1", Data: []byte{0, 1, 2, '\n', 0xff}},
		{Kind: Data, ID: "s2", Data: bytes.Repeat([]byte("x"), MaxData)},
	} {
		got, err := Parse(m.String())
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("Parse(%.80q...) = %+v, %v", m.String(), got.Kind, err)
		}
	}
	long := (Msg{Kind: Data, ID: "s1", Data: bytes.Repeat([]byte("x"), MaxData+1)}).String()
	for _, line := range []string{"CAPS ", "CAPS a  b", "CAPS a*", "OPEN", "OPEN *", "EOF", "DATA s1", "DATA s1 ",
		"DATA s1 !!!!", "DATA s1 AA", "DATA s1 AB==", "DATA * AAAA", long} {
		if m, err := Parse(line); err == nil {
			t.Errorf("Parse(%.80q) = %+v, want an error", line, m.Kind)
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("Parse(%.80q): %v does not wrap ErrMalformed", line, err)
		}
	}
	if n := len(long); n > MaxLine+4*MaxData/3 {
		t.Errorf("a DATA line of MaxData+1 bytes is %d long", n)
	}
	if n := len((Msg{Kind: Data, ID: strings.Repeat("s", 64), Data: make([]byte, MaxData)}).String()); n > MaxLine {
		t.Errorf("a full DATA line is %d bytes, over MaxLine", n)
	}
}

func FuzzParseMux(f *testing.F) {
	f.Add("DATA s1 AAEC")
	f.Add("CAPS mux1")
	f.Add("OPEN s1")
	f.Add("EOF s9")
	f.Fuzz(func(t *testing.T, line string) {
		m, err := Parse(line)
		if err != nil {
			return
		}
		if s := m.String(); s != line {
			t.Fatalf("Parse(%q).String() = %q", line, s)
		}
		if m.Kind == Data && (len(m.Data) == 0 || len(m.Data) > MaxData) {
			t.Fatalf("Parse(%q): %d bytes of DATA", line, len(m.Data))
		}
	})
}

// TestMuxUploadPack runs git upload-pack (protocol v2) over a stream:
// its capability advertisement arrives, and EOF ends it with status 0.
func TestMuxUploadPack(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "--bare", "up.git")
	c, _ := pipeServer(t, ServerOptions{Mux: true, Timeout: -1}, "noise\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	caps, err := c.Negotiate(ctx)
	if err != nil || !reflect.DeepEqual(caps, []string{CapMux}) || !c.Mux() {
		t.Fatalf("Negotiate = %q, %v; Mux %v", caps, err, c.Mux())
	}
	st, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	req := helper.RequestFrame{Service: helper.UploadPack, GitProtocol: "version=2", Path: dir + "/up.git"}
	if err := req.Encode(st); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	eofSent := false
	for {
		f, err := helper.ReadFrame(st)
		if err != nil {
			t.Fatalf("after %q: %v", out.String(), err)
		}
		switch f := f.(type) {
		case helper.ReadyFrame:
		case helper.DataFrame:
			out.Write(f.Data)
			if !eofSent && bytes.HasSuffix(out.Bytes(), []byte("0000")) {
				eofSent = true
				if err := (helper.EOFFrame{}).Encode(st); err != nil {
					t.Fatal(err)
				}
			}
		case helper.ExitFrame:
			if f.Code != 0 || !strings.Contains(out.String(), "version 2") {
				t.Fatalf("exit %d after %q", f.Code, out.String())
			}
			_ = st.CloseWrite()
			// The server ends its side too.
			if _, err := io.ReadAll(st); err != nil {
				t.Fatal(err)
			}
			return
		default:
			t.Fatalf("frame %T %+v", f, f)
		}
	}
}

// TestMuxRefusedPath: a repository that does not exist is refused with
// the helper's ERROR frame, and the stream ends.
func TestMuxRefusedPath(t *testing.T) {
	c, _ := pipeServer(t, ServerOptions{Mux: true, Timeout: -1}, "")
	if _, err := c.Negotiate(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := (helper.RequestFrame{Service: helper.UploadPack, Path: t.TempDir() + "/nope"}).Encode(st); err != nil {
		t.Fatal(err)
	}
	f, err := helper.ReadFrame(st)
	if e, ok := f.(helper.ErrorFrame); err != nil || !ok || !strings.Contains(e.Message, "repository not found") {
		t.Fatalf("got %+v, %v", f, err)
	}
	if _, err := io.ReadAll(st); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
}

// TestNegotiateOldServer: a server without CAPS answers "ERROR * ...";
// the client takes it for no capabilities, and goes on working.
func TestNegotiateOldServer(t *testing.T) {
	dir := t.TempDir()
	git(t, dir, "init", "-q")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
	c, _ := pipeServer(t, ServerOptions{Timeout: -1}, "")
	caps, err := c.Negotiate(context.Background())
	if err != nil || len(caps) != 0 || c.Mux() {
		t.Fatalf("Negotiate = %q, %v; Mux %v", caps, err, c.Mux())
	}
	if _, err := c.Open(); !errors.Is(err, ErrNoMux) {
		t.Fatalf("Open = %v, want ErrNoMux", err)
	}
	s, err := c.Watch("1", dir)
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, s); e.Err != nil || !e.First || len(e.Refs) != 1 {
		t.Fatalf("event %+v", e)
	}
	// A later "ERROR *" is what it always was: the end of the stream.
	if _, err := io.WriteString(c.w, "BOGUS\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// TestMuxStreamsEndWithConnection: a stream being read when the
// connection ends gets the connection's error, not a clean EOF.
func TestMuxStreamsEndWithConnection(t *testing.T) {
	cr, sw := io.Pipe()
	sr, cw := io.Pipe()
	go func() { // a server answering only what it is asked
		in := bufio.NewReader(sr)
		_, _ = io.WriteString(sw, Banner+"\n")
		if line, _ := in.ReadString('\n'); line == "CAPS mux1\n" {
			_, _ = io.WriteString(sw, "CAPS mux1\n")
		}
		if line, _ := in.ReadString('\n'); line == "OPEN s1\n" {
			_, _ = io.WriteString(sw, "DATA s1 AAEC\n")
		}
		_, _ = io.Copy(io.Discard, in)
	}()
	c, err := NewClient(context.Background(), cr, cw)
	if err != nil {
		t.Fatal(err)
	}
	st, err := func() (*Stream, error) {
		if _, err := c.Negotiate(context.Background()); err != nil {
			return nil, err
		}
		return c.Open()
	}()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if n, err := io.ReadAtLeast(st, buf, 3); err != nil || !bytes.Equal(buf[:n], []byte{0, 1, 2}) {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	sw.Close() // the far side vanishes
	if _, err := io.ReadAll(st); err == nil {
		t.Fatal("read a clean EOF from a stream whose connection ended")
	}
}

// TestServerWithoutMuxAnswersAsBefore: CAPS, OPEN, DATA and EOF are
// unknown verbs to a server without Mux, as to servers before them.
func TestServerWithoutMuxAnswersAsBefore(t *testing.T) {
	var out bytes.Buffer
	in := "CAPS mux1\nOPEN s1\nDATA s1 AAAA\nEOF s1\n"
	if err := Serve(context.Background(), strings.NewReader(in), &out, ServerOptions{Timeout: -1}); err != nil {
		t.Fatal(err)
	}
	want := Banner + "\n"
	for _, v := range []string{"CAPS", "OPEN", "DATA", "EOF"} {
		want += `ERROR * malformed notify line: unknown verb "` + v + `"` + "\n"
	}
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// FuzzMuxClient feeds arbitrary server output to a client using a
// stream: it must end cleanly (no panic, no hang) whatever it gets.
func FuzzMuxClient(f *testing.F) {
	f.Add(Banner + "\nCAPS mux1\nDATA s1 AAEC\nEOF s1\n")
	f.Add(Banner + "\nERROR * unknown verb\nDATA s1 AAEC\n")
	f.Add(Banner + "\nCAPS mux1\nDATA s1 AAEC\nDATA s1 !!\n")
	f.Add(Banner + "\nCAPS\nCAPS mux1\nEOF s1\nEOF s1\nDATA s2 AAAA\n")
	f.Fuzz(func(t *testing.T, in string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := NewClient(ctx, strings.NewReader(in), io.Discard)
		if err != nil {
			return
		}
		if _, err := c.Negotiate(ctx); err != nil {
			return
		}
		if st, err := c.Open(); err == nil {
			_, _ = io.Copy(io.Discard, st)
			st.Close()
		}
		<-c.Done()
		if c.Err() == nil {
			t.Fatal("stream ended without an error")
		}
	})
}

// FuzzServerMux feeds arbitrary client input to a server offering
// streams: it must end when its input ends, whatever it got.
func FuzzServerMux(f *testing.F) {
	var req bytes.Buffer
	_ = helper.RequestFrame{Service: helper.UploadPack, Path: "/nonexistent"}.Encode(&req)
	f.Add("CAPS mux1\nOPEN s1\nDATA s1 " + b64.EncodeToString(req.Bytes()) + "\nEOF s1\n")
	f.Add("OPEN s1\nOPEN s1\nDATA s2 AAAA\nEOF s3\n")
	f.Add("OPEN s1\nDATA s1 AAEC\nDATA s1 AAEC\n")
	f.Fuzz(func(t *testing.T, in string) {
		done := make(chan error, 1)
		go func() {
			done <- Serve(context.Background(), strings.NewReader(in), io.Discard, ServerOptions{Mux: true, Timeout: -1})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("Serve did not end with its input")
		}
	})
}
