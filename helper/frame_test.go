package helper

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

var frameTests = []struct {
	name  string
	frame Frame
	wire  string // hex
}{
	{"request", RequestFrame{Service: "git-upload-pack", GitProtocol: "version=2", Path: "/r.git"},
		"52" + "00000025" + "01" +
			"000f" + hex.EncodeToString([]byte("git-upload-pack")) +
			"0009" + hex.EncodeToString([]byte("version=2")) +
			"0006" + hex.EncodeToString([]byte("/r.git"))},
	{"request v0 no path", RequestFrame{Service: "git-receive-pack"},
		"52" + "00000017" + "01" + "0010" + hex.EncodeToString([]byte("git-receive-pack")) + "0000" + "0000"},
	{"ready", ReadyFrame{}, "4b00000000"},
	{"data", DataFrame{Data: []byte("0000")}, "440000000430303030"},
	{"empty data", DataFrame{Data: []byte{}}, "4400000000"},
	{"eof", EOFFrame{}, "4500000000"},
	{"stderr", StderrFrame{Text: []byte("hi\n")}, "5300000003" + "68690a"},
	{"exit 0", ExitFrame{Code: 0}, "5800000004" + "00000000"},
	{"exit 128", ExitFrame{Code: 128}, "5800000004" + "00000080"},
	{"exit -1", ExitFrame{Code: -1}, "5800000004" + "ffffffff"},
	{"error", ErrorFrame{Message: "repository not found"}, "2100000014" + hex.EncodeToString([]byte("repository not found"))},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tt := range frameTests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := hex.DecodeString(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := tt.frame.Encode(&buf); err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("Encode = %x, want %x", buf.Bytes(), want)
			}
			got, err := ReadFrame(bytes.NewReader(want))
			if err != nil {
				t.Fatalf("ReadFrame: %v", err)
			}
			if got.Type() != tt.frame.Type() || !sameFrame(got, tt.frame) {
				t.Fatalf("ReadFrame = %#v, want %#v", got, tt.frame)
			}
		})
	}
}

// sameFrame compares frames, taking nil and empty byte slices as equal.
func sameFrame(a, b Frame) bool {
	var x, y bytes.Buffer
	return a.Encode(&x) == nil && b.Encode(&y) == nil && bytes.Equal(x.Bytes(), y.Bytes()) &&
		reflect.TypeOf(a) == reflect.TypeOf(b)
}

func TestFrameSequence(t *testing.T) {
	var buf bytes.Buffer
	for _, tt := range frameTests {
		if err := tt.frame.Encode(&buf); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range frameTests {
		f, err := ReadFrame(&buf)
		if err != nil || !sameFrame(f, tt.frame) {
			t.Fatalf("%s: got %#v, %v", tt.name, f, err)
		}
	}
	if _, err := ReadFrame(&buf); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReadFrameErrors(t *testing.T) {
	big := strings.Repeat("x", maxPath+1)
	tests := []struct {
		name string
		wire string // hex
		want error
	}{
		{"unknown type", "5a00000000", ErrFrame},
		{"data over 64KiB", "4400010001", ErrFrame},
		{"huge length", "44ffffffff", ErrFrame},
		{"ready with payload", "4b0000000100", ErrFrame},
		{"exit too short", "58000000020000", ErrFrame},
		{"exit empty", "5800000000", ErrFrame},
		{"request empty", "5200000000", ErrFrame},
		{"request bad version", "520000000702000000000000", ErrFrame},
		{"request truncated field", "5200000003010005", ErrFrame},
		{"request overrun", "5200000005010005" + "6162", ErrFrame},
		{"request trailing", "52000000080100000000000000", ErrFrame},
		{"request NUL", "5200000008" + "0100010000000000", ErrFrame},
		{"truncated header", "4400", io.ErrUnexpectedEOF},
		{"truncated payload", "440000000430", io.ErrUnexpectedEOF},
		{"error over 4KiB", "2100001001", ErrFrame},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := hex.DecodeString(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			f, err := ReadFrame(bytes.NewReader(b))
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadFrame = %#v, %v; want %v", f, err, tt.want)
			}
		})
	}
	t.Run("encode refuses", func(t *testing.T) {
		for _, f := range []Frame{
			RequestFrame{Service: "git-upload-pack", Path: big},
			RequestFrame{Service: "git-upload-pack\x00"},
			DataFrame{Data: make([]byte, MaxData+1)},
			ErrorFrame{Message: strings.Repeat("e", MaxErrorMessage+1)},
		} {
			if err := f.Encode(io.Discard); !errors.Is(err, ErrFrame) {
				t.Errorf("Encode(%T) = %v, want ErrFrame", f, err)
			}
		}
	})
}

// A hostile length is refused from the header alone: nothing is read or
// allocated beyond it.
func TestReadFrameRefusesBeforeReading(t *testing.T) {
	data := append([]byte{'D', 0xff, 0xff, 0xff, 0xff}, make([]byte, 1<<20)...)
	const runs = 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		r := &countingReader{r: bytes.NewReader(data)}
		if _, err := ReadFrame(r); !errors.Is(err, ErrFrame) {
			t.Fatal(err)
		}
		if r.n != HeaderSize {
			t.Fatalf("read %d bytes, want %d", r.n, HeaderSize)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 1024 {
		t.Errorf("refusing a frame allocated %d bytes", perRun)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func FuzzReadFrame(f *testing.F) {
	for _, tt := range frameTests {
		b, _ := hex.DecodeString(tt.wire)
		f.Add(b)
	}
	f.Add([]byte("D\x00\x01\x00\x00"))
	f.Add([]byte("R\x00\x00\x00\x07\x01\x00\x01a\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		fr, err := ReadFrame(r)
		if err != nil {
			return
		}
		consumed := b[:len(b)-r.Len()]
		var out bytes.Buffer
		if err := fr.Encode(&out); err != nil {
			t.Fatalf("decoded %#v does not encode: %v", fr, err)
		}
		if !bytes.Equal(out.Bytes(), consumed) {
			t.Fatalf("round trip: read %x, encoded %x", consumed, out.Bytes())
		}
	})
}
