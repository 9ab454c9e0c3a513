package pairing

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/git-remote-daemon/git-remote-daemon/telehash"
)

// The pair service's exchange, one JSON object per line each way, on a
// telehash stream {"service":"pair"}:
//
//	joiner > {"v":1,"nonce":<16 bytes>,"proof":<HMAC>,"name":<suggested>,"url":<joiner's th:: URL>}
//	inviter < {"ok":true,"name":<suggested>,"repo":<repository id>}  or  {"error":<why>}
//
// proof is HMAC-SHA256 keyed with the code's secret over proofContext,
// the inviter's hashname, the joiner's hashname and the nonce (byte
// strings as base64 in JSON). The stream is encrypted and authenticated
// by the telehash session, whose far end the code's key pins, so the
// proof is seen by the inviter only, and bound to the joiner's hashname
// it cannot serve anyone else. name is how the sender suggests the other
// name it (a remote name, or empty).

// version is the exchange's version.
const version = 1

// maxMessage bounds one message of the exchange.
const maxMessage = 4096

const proofContext = "git-remote-daemon pair v1"

type joinRequest struct {
	V     int    `json:"v"`
	Nonce []byte `json:"nonce"`
	Proof []byte `json:"proof"`
	Name  string `json:"name,omitempty"`
	URL   string `json:"url"`
}

type joinReply struct {
	OK   bool   `json:"ok,omitempty"`
	Name string `json:"name,omitempty"`
	// Repo names the inviter's repository among those its node serves
	// (the repo parameter of th:: URLs; "" for none).
	Repo  string `json:"repo,omitempty"`
	Error string `json:"error,omitempty"`
}

// proof computes the joiner's proof of the secret.
func proof(secret [SecretSize]byte, inviter, joiner telehash.Hashname, nonce []byte) []byte {
	m := hmac.New(sha256.New, secret[:])
	for _, part := range [][]byte{[]byte(proofContext), []byte(inviter), []byte(joiner), nonce} {
		m.Write([]byte{byte(len(part) >> 8), byte(len(part))}) // unambiguous framing
		m.Write(part)
	}
	return m.Sum(nil)
}

// checkProof reports whether got proves secret, in constant time.
func checkProof(secret [SecretSize]byte, inviter, joiner telehash.Hashname, nonce, got []byte) bool {
	return hmac.Equal(proof(secret, inviter, joiner, nonce), got)
}

// writeMessage sends v as one line.
func writeMessage(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// errMessage is wrapped by readMessage's errors about what came.
var errMessage = errors.New("bad pairing message")

// readMessage reads one line of at most maxMessage bytes into v.
func readMessage(r *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxMessage {
			return fmt.Errorf("%w: over %d bytes", errMessage, maxMessage)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the other side closed the pairing: %w", io.ErrUnexpectedEOF)
			}
			return err
		}
		break
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("%w: %v", errMessage, err)
	}
	return nil
}

// check validates a request's shape.
func (q *joinRequest) check() error {
	switch {
	case q.V != version:
		return fmt.Errorf("%w: version %d, want %d", errMessage, q.V, version)
	case len(q.Nonce) < 16 || len(q.Nonce) > 64:
		return fmt.Errorf("%w: nonce of %d bytes", errMessage, len(q.Nonce))
	case len(q.Proof) != sha256.Size:
		return fmt.Errorf("%w: proof of %d bytes", errMessage, len(q.Proof))
	}
	return nil
}
