package telehash

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestLiveTelehashJS links with a real telehash-js peer over UDP on
// 127.0.0.1 and runs a reliable "echo" channel. It runs only when
// TELEHASH_JS_NODE_PATH names a node_modules holding telehash-js 0.4.18
// (scripts/test installs it from testpeers/telehash-js and sets the
// variable, and GRD_REQUIRE_PEERS=1, under which a missing peer fails the
// test instead of skipping it).
func TestLiveTelehashJS(t *testing.T) {
	nodePath := os.Getenv("TELEHASH_JS_NODE_PATH")
	if nodePath == "" {
		if os.Getenv("GRD_REQUIRE_PEERS") != "" {
			t.Fatal("TELEHASH_JS_NODE_PATH not set: the telehash-js peer is not installed (scripts/test installs it)")
		}
		t.Skip("TELEHASH_JS_NODE_PATH not set; scripts/test installs the telehash-js peer")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "testdata/js_peer.js")
	cmd.Env = append(os.Environ(), "NODE_PATH="+nodePath)
	cmd.Stderr = os.Stderr
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var link struct {
		Hashname Hashname
		Keys     map[string]string
		Paths    []struct {
			IP   string
			Port int
		}
	}
	if err := json.Unmarshal(line, &link); err != nil || len(link.Paths) == 0 {
		t.Fatalf("link json %s: %v", line, err)
	}
	if hn, err := HashnameFromBase32Keys(link.Keys); err != nil || hn != link.Hashname {
		t.Fatalf("peer hashname %s, computed %s %v", link.Hashname, hn, err)
	}
	remoteKey, _ := Base32Decode(link.Keys["3a"])
	id, _ := GenerateIdentity(rand.Reader)
	x, err := NewExchange(nil, id, remoteKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	raddr := &net.UDPAddr{IP: net.ParseIP(link.Paths[0].IP), Port: link.Paths[0].Port}
	send := func(pkt []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		c, err := Cloak(rand.Reader, pkt, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.WriteToUDP(c, raddr); err != nil {
			t.Fatal(err)
		}
	}
	send(x.Handshake())
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var cid uint32
	var echoed, ended bool
	buf := make([]byte, MaxPacketSize)
	for !ended {
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("read (echoed=%v): %v", echoed, err)
		}
		pkt, rounds, err := uncloak(buf[:n])
		if err != nil || rounds == 0 {
			t.Fatalf("uncloak: %d rounds, %v", rounds, err)
		}
		p, err := DecodePacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Head) == 1 {
			h, res, err := x.receiveHandshake(pkt)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("handshake from %s at %d: %+v", h.Hashname, h.At, res)
			if h.Hashname != link.Hashname {
				t.Fatalf("hashname %s", h.Hashname)
			}
			if !res.InSync {
				send(x.Handshake())
			}
			if cid == 0 {
				cid, _ = x.NextChannelID()
				send(x.encryptChannel(&ChannelPacket{C: cid, Type: "echo", Seq: 1, Body: []byte("ping")}))
			}
			continue
		}
		cp, err := x.decryptChannel(pkt)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("channel packet %v", cp)
		if cp.C != cid {
			continue // e.g. telehash-js's "path" ping
		}
		if cp.Err != "" {
			t.Fatalf("echo channel error %q", cp.Err)
		}
		if string(cp.Body) == "ping" {
			echoed = true
			send(x.encryptChannel(&ChannelPacket{C: cid, Seq: 2, Ack: cp.Seq, End: true}))
		}
		if cp.End {
			ended = true
		}
	}
	if !echoed {
		t.Fatal("no echo")
	}
}
