package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the UDP programs run inside the hosts
// (NETNSTEST_HELPER=echo|probe).
func TestMain(m *testing.M) {
	switch os.Getenv("NETNSTEST_HELPER") {
	case "":
		os.Exit(m.Run())
	case "echo":
		os.Exit(echo(os.Getenv("NETNSTEST_ADDR")))
	case "probe":
		os.Exit(probe(os.Getenv("NETNSTEST_ADDR"), os.Stdin, os.Stdout))
	case "thnode":
		os.Exit(thNode(os.Getenv("NETNSTEST_ADDR"), os.Getenv("NETNSTEST_ROUTER") == "true", os.Stdin, os.Stdout))
	case "punch":
		os.Exit(punch(os.Getenv("NETNSTEST_ADDR"), os.Stdin, os.Stdout))
	default:
		fmt.Fprintln(os.Stderr, "unknown NETNSTEST_HELPER")
		os.Exit(2)
	}
}

// echo answers every datagram with itself and the address it came from.
func echo(addr string) int {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	buf := make([]byte, 1500)
	for {
		k, from, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := c.WriteTo(append(buf[:k:k], " "+from.String()...), from); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// probe sends, from one socket bound to addr, a datagram to each address
// read from in, and prints the answer (or "timeout") for each.
func probe(addr string, in io.Reader, out io.Writer) int {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	buf := make([]byte, 1500)
	for n := 1; sc.Scan(); n++ {
		to, err := net.ResolveUDPAddr("udp4", sc.Text())
		if err != nil {
			fmt.Fprintln(out, "error", err)
			continue
		}
		// A numbered probe: a late answer to an earlier one is not taken
		// for this one's.
		nonce := fmt.Sprintf("probe%d ", n)
		answer := "timeout"
		for try := 0; try < 3 && answer == "timeout"; try++ {
			if _, err := c.WriteTo([]byte(nonce[:len(nonce)-1]), to); err != nil {
				answer = "error " + err.Error()
				break
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			for {
				k, from, err := c.ReadFrom(buf)
				if err != nil {
					break
				}
				if a, ok := strings.CutPrefix(string(buf[:k]), nonce); ok && from.String() == to.String() {
					answer = a
					break
				}
			}
		}
		fmt.Fprintln(out, answer)
	}
	return 0
}

// helper starts the test binary as program prog inside h, bound to addr,
// and waits for it to be ready.
func helper(t *testing.T, n *Net, h *Host, prog, addr string) (*exec.Cmd, io.WriteCloser, *bufio.Scanner) {
	t.Helper()
	c := h.Command(context.Background(), os.Args[0])
	c.Env = append(c.Env, "NETNSTEST_HELPER="+prog, "NETNSTEST_ADDR="+addr)
	c.Stderr = os.Stderr
	stdin, err := c.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(c); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("%s in %s did not start: %q %v", prog, h.Name, sc.Text(), sc.Err())
	}
	return c, stdin, sc
}

// prober sends probes from one socket of a host.
type prober struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Scanner
}

func newProber(t *testing.T, n *Net, h *Host) *prober {
	_, in, out := helper(t, n, h, "probe", "0.0.0.0:5000")
	return &prober{t, in, out}
}

// to probes an echo server and returns what it saw as our address
// ("timeout" when nothing came back).
func (p *prober) to(addr string) string {
	p.t.Helper()
	if _, err := fmt.Fprintln(p.in, addr); err != nil {
		p.t.Fatal(err)
	}
	if !p.out.Scan() {
		p.t.Fatalf("probe ended: %v", p.out.Err())
	}
	return strings.TrimSpace(p.out.Text())
}

func echoOn(t *testing.T, n *Net, h *Host) string {
	addr := h.IP().String() + ":7000"
	helper(t, n, h, "echo", addr)
	return addr
}

// punch binds addr, learns its public mapping from the echo server whose
// address is its first input line and prints it, then sends to the peer
// mapping on its second line every 50 ms for 2 s and prints "got FROM"
// for the first datagram from the peer, or "nothing".
func punch(addr string, in io.Reader, out io.Writer) int {
	c, err := net.ListenPacket("udp4", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(out, "ready")
	sc := bufio.NewScanner(in)
	buf := make([]byte, 1500)
	if !sc.Scan() {
		return 1
	}
	echo, err := net.ResolveUDPAddr("udp4", sc.Text())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.WriteTo([]byte("map"), echo); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	k, _, err := c.ReadFrom(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Fprintln(out, strings.TrimPrefix(string(buf[:k]), "map "))
	if !sc.Scan() {
		return 1
	}
	peer, err := net.ResolveUDPAddr("udp4", sc.Text())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	got := make(chan string, 1)
	go func() {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				got <- "nothing"
				return
			}
			if string(buf[:k]) == "punch" {
				got <- "got " + from.String()
				return
			}
		}
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, _ = c.WriteTo([]byte("punch"), peer)
		select {
		case r := <-got:
			// Keep sending a little so that the peer gets ours too.
			for range 10 {
				_, _ = c.WriteTo([]byte("punch"), peer)
				time.Sleep(20 * time.Millisecond)
			}
			fmt.Fprintln(out, r)
			return 0
		case <-tick.C:
		}
	}
}
