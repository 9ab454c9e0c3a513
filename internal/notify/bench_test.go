package notify

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/git-remote-daemon/git-remote-daemon/helper"
)

// BenchmarkStreamFetch measures what the streams' base64 lines cost: a
// protocol v0 fetch of a 32 MiB incompressible pack from git upload-pack
// through a stream (client, pipes, server, helper.Serve), against the
// same fetch from git upload-pack on pipes. b.SetBytes makes go test
// print MB/s for each.
func BenchmarkStreamFetch(b *testing.B) {
	dir := b.TempDir()
	up := filepath.Join(dir, "up.git")
	git(b, dir, "init", "-q", "--bare", up)
	blob := make([]byte, 32<<20)
	if _, err := rand.Read(blob); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blob"), blob, 0o644); err != nil {
		b.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	git(b, dir, "init", "-q", work)
	if err := os.Rename(filepath.Join(dir, "blob"), filepath.Join(work, "blob")); err != nil {
		b.Fatal(err)
	}
	git(b, work, "add", "blob")
	git(b, work, "commit", "-q", "-m", "blob")
	git(b, work, "push", "-q", up, "HEAD:refs/heads/main")
	sha := git(b, work, "rev-parse", "HEAD")
	git(b, up, "repack", "-adq") // one pack, sent as it is

	b.Run("direct", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for range b.N {
			cmd := exec.Command("git", "upload-pack", up)
			in, _ := cmd.StdinPipe()
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			n := fetchV0(b, in, out, sha)
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
			if n < int64(len(blob)) {
				b.Fatalf("pack of %d bytes", n)
			}
		}
	})
	b.Run("stream", func(b *testing.B) {
		c, _ := pipeServer(&testing.T{}, ServerOptions{Mux: true, Timeout: -1}, "")
		if _, err := c.Negotiate(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(blob)))
		for range b.N {
			st, err := c.Open()
			if err != nil {
				b.Fatal(err)
			}
			if err := (helper.RequestFrame{Service: helper.UploadPack, Path: up}).Encode(st); err != nil {
				b.Fatal(err)
			}
			if f, err := helper.ReadFrame(st); err != nil || f.Type() != helper.TypeReady {
				b.Fatalf("%v %v", f, err)
			}
			pr, pw := io.Pipe()
			go func() { // frames to a byte stream, as the shim does
				for {
					f, err := helper.ReadFrame(st)
					if err != nil {
						pw.CloseWithError(err)
						return
					}
					switch f := f.(type) {
					case helper.DataFrame:
						if _, err := pw.Write(f.Data); err != nil {
							return
						}
					case helper.ExitFrame:
						pw.Close()
						return
					}
				}
			}()
			w := writerFunc(func(p []byte) (int, error) {
				return len(p), helper.DataFrame{Data: p}.Encode(st)
			})
			if n := fetchV0(b, w, pr, sha); n < int64(len(blob)) {
				b.Fatalf("pack of %d bytes", n)
			}
			_ = helper.EOFFrame{}.Encode(st)
			st.Close()
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// fetchV0 asks upload-pack (protocol v0) for sha and returns how many
// bytes followed the request.
func fetchV0(b *testing.B, in io.Writer, out io.Reader, sha string) int64 {
	r := bufio.NewReader(out)
	for { // the advertisement, up to its flush
		var hdr [4]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			b.Fatal(err)
		}
		var n int
		if _, err := fmt.Sscanf(string(hdr[:]), "%04x", &n); err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
		if _, err := io.CopyN(io.Discard, r, int64(n-4)); err != nil {
			b.Fatal(err)
		}
	}
	want := "want " + sha + "\n"
	done := "done\n"
	req := fmt.Sprintf("%04x%s0000%04x%s", len(want)+4, want, len(done)+4, done)
	if _, err := io.WriteString(in, req); err != nil {
		b.Fatal(err)
	}
	if c, ok := in.(io.Closer); ok {
		c.Close()
	}
	n, err := io.Copy(io.Discard, r)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
