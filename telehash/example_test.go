package telehash_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// Two endpoints on loopback: the server accepts streams from the client's
// hashname and answers each request in upper case; the client links to
// the server with its link info (keys and paths, as in a link:// URL) and
// opens a stream with a request attached.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	serverID, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	clientID, err := telehash.GenerateIdentity(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}

	server, err := telehash.NewMesh(ctx, serverID, telehash.MeshOptions{
		Listen: "127.0.0.1:0",
		// Only the client gets an answer; anyone else gets nothing back.
		Allow: func(h telehash.Hashname) bool { return h == clientID.Hashname() },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer server.Close()
	server.Handle(telehash.StreamType, func(c *telehash.Channel) {
		var req struct{ Service string }
		if err := telehash.StreamRequest(c, &req); err != nil {
			c.Abort("bad request")
			return
		}
		s, err := telehash.NewStream(ctx, c)
		if err != nil {
			return
		}
		defer s.Close()
		body, _ := io.ReadAll(s)
		fmt.Fprintf(s, "%s: %s", req.Service, strings.ToUpper(string(body)))
	})

	client, err := telehash.NewMesh(ctx, clientID, telehash.MeshOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	peer, err := client.Link(ctx, server.LinkInfo())
	if err != nil {
		log.Fatal(err)
	}
	s, err := client.OpenStream(ctx, peer, map[string]string{"service": "shout"})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	io.WriteString(s, "hello")
	s.CloseWrite()
	answer, err := io.ReadAll(s)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(answer))
	// Output: shout: HELLO
}
