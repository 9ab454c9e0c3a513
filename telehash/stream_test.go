package telehash

import (
	"context"
	"crypto/sha256"
	"io"
	"testing"
	"time"
)

// oneWay sends size bytes from a to b over a new stream and returns the
// time until b read them all.
func oneWay(t testing.TB, a, b *Mesh, data []byte) time.Duration {
	t.Helper()
	return oneWayWith(t, a, b, data, nil)
}

// oneWayWith is oneWay with a hook run by b's handler before it reads.
func oneWayWith(t testing.TB, a, b *Mesh, data []byte, before func()) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := sha256.Sum256(data)
	done := make(chan error, 1)
	b.Handle(StreamType, func(c *Channel) {
		if before != nil {
			before()
		}
		s, _ := NewStream(ctx, c)
		h := sha256.New()
		n, err := io.Copy(h, s)
		if err == nil && (int(n) != len(data) || [32]byte(h.Sum(nil)) != want) {
			err = io.ErrUnexpectedEOF
		}
		if err == nil {
			err = s.Close()
		}
		done <- err
	})
	start := time.Now()
	s, err := a.OpenStream(ctx, b.Hashname(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 64 << 10 {
		if _, err := s.Write(data[off:min(off+64<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	d := time.Since(start)
	if _, err := io.Copy(io.Discard, s); err != nil {
		t.Fatal(err)
	}
	s.Close()
	return d
}

func TestMeshStreamOneWay(t *testing.T) {
	a := newTestMesh(t, "oneway-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	b := newTestMesh(t, "oneway-b", bo)
	linkMeshes(t, a, b)
	size := 32 << 20
	if testing.Short() || raceEnabled {
		size = 4 << 20
	}
	d := oneWay(t, a, b, testData(size, 3))
	t.Logf("%d MiB one way in %v: %.1f MB/s; a %+v", size>>20, d.Round(time.Millisecond),
		float64(size)/1e6/d.Seconds(), a.Stats())
}

// BenchmarkStreamThroughput moves 8 MiB per iteration one way between two
// meshes over loopback UDP and reports MB/s, the CPU time both meshes
// (this process: sender, receiver, sockets) spent per byte moved
// (cpu-ns/B, from getrusage), and datagrams per MB each way.
// Sub-benchmarks: plain (a system call per datagram, MeshOptions.NoBatchIO),
// batch (recvmmsg/sendmmsg, NoGSO) and gso (batches with UDP GSO and GRO,
// the default on Linux).
func BenchmarkStreamThroughput(b *testing.B) {
	for _, mode := range ioModes {
		b.Run(mode.name, func(b *testing.B) { benchStream(b, mode.opts) })
	}
}

// ioModes are the datagram I/O paths of a mesh.
var ioModes = []struct {
	name string
	opts func(*MeshOptions)
}{
	{"plain", func(o *MeshOptions) { o.NoBatchIO = true }},
	{"batch", func(o *MeshOptions) { o.NoGSO = true }},
	{"gso", func(*MeshOptions) {}},
}

func benchStream(b *testing.B, mode func(*MeshOptions)) {
	ao := fastOpts()
	mode(&ao)
	a := newTestMesh(b, "bench-a", ao)
	bo := fastOpts()
	mode(&bo)
	bo.Allow = allowAll
	m := newTestMesh(b, "bench-b", bo)
	linkMeshes(b, a, m)
	data := testData(8<<20, 4)
	b.SetBytes(int64(len(data)))
	sa, sm := a.Stats(), m.Stats()
	cpu0 := processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		total += oneWay(b, a, m, data)
	}
	b.StopTimer()
	cpu := processCPU() - cpu0
	moved := float64(b.N * len(data))
	b.ReportMetric(moved/1e6/total.Seconds(), "MB/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/moved, "cpu-ns/B")
	}
	b.ReportMetric(float64(a.Stats().Sent-sa.Sent)/(moved/1e6), "dgrams-out/MB")
	b.ReportMetric(float64(m.Stats().Sent-sm.Sent)/(moved/1e6), "acks-back/MB")
}

// TestMeshSlowReader checks flow control: a reader that does not read for
// longer than the channel timeout closes the window; the writer blocks
// and probes instead of timing out, and the data arrives intact.
func TestMeshSlowReader(t *testing.T) {
	a := newTestMesh(t, "slow-a", fastOpts())
	bo := fastOpts()
	bo.Allow = allowAll
	bo.Window = 64
	b := newTestMesh(t, "slow-b", bo)
	linkMeshes(t, a, b)
	pause := fastOpts().ChannelTimeout + time.Second
	start := time.Now()
	d := oneWayWith(t, a, b, testData(1<<20, 5), func() { time.Sleep(pause) })
	if d < pause {
		t.Fatalf("transfer took %v, less than the reader's pause", d)
	}
	t.Logf("1 MiB past a reader paused %v in %v; a %+v", pause, time.Since(start).Round(time.Millisecond), a.Stats())
}
