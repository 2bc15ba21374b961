package protocol

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
)

// MaxLineBytes bounds one message on the wire. A snapshot of a 500-node
// deployment is about 300 KiB, so 4 MiB leaves room without letting a
// confused peer exhaust memory.
const MaxLineBytes = 4 << 20

// Reader decodes envelopes from a stream, one per line.
type Reader struct {
	r   *bufio.Reader
	max int
}

// NewReader returns a Reader over r with the default line limit.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: MaxLineBytes}
}

// SetLimit changes the longest accepted line (for tests and small devices).
func (r *Reader) SetLimit(n int) { r.max = n }

// Read returns the next envelope. A line that is too long, not JSON, or
// lacks a type yields an *Error (CodeTooLarge or CodeBadRequest) and the
// reader stays usable for the next line. At the end of the stream it
// returns io.EOF; any other transport error is returned wrapped.
func (r *Reader) Read() (Envelope, error) {
	for {
		line, err := r.readLine()
		if err != nil {
			return Envelope{}, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue // blank lines are keep-alives from humans typing into socat
		}
		return DecodeLine(line)
	}
}

// readLine returns one line without its newline. A line longer than the
// limit is consumed to its end and reported as CodeTooLarge, so that the
// stream stays in step.
func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > r.max+1 { // +1 for the newline
				tooLong = true
				buf = nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, Errorf(CodeTooLarge, "split the request or ask for less",
					"message longer than %d bytes", r.max)
			}
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) > 0 && !tooLong {
				return buf, nil // a last line without newline still counts
			}
			return nil, io.EOF
		default:
			return nil, fmt.Errorf("reading message: %w", err)
		}
	}
}

// DecodeLine decodes one line into an envelope, validating that it has a
// type. It never panics on any input.
func DecodeLine(line []byte) (Envelope, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&env); err != nil {
		return Envelope{}, Errorf(CodeBadRequest,
			`send one JSON object per line, such as {"type":"hello","id":1,"body":{"versions":[1]}}`,
			"message is not a JSON envelope: %v", err)
	}
	if dec.More() {
		return Envelope{}, Errorf(CodeBadRequest, "send exactly one JSON object per line",
			"trailing data after the JSON object")
	}
	if env.Type == "" {
		return env, Errorf(CodeBadRequest, `every message needs a "type" field`,
			"message has no type")
	}
	return env, nil
}

// Writer encodes envelopes onto a stream. It is safe for concurrent use, so
// that a watch stream and action replies can share one connection.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write sends one envelope as one line.
func (w *Writer) Write(env Envelope) error {
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encoding %s message: %w", env.Type, err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.w.Write(b); err != nil {
		return fmt.Errorf("sending %s message: %w", env.Type, err)
	}
	return nil
}

// Send encodes body as a message of type t with the given id and writes it.
func (w *Writer) Send(t Type, id uint64, body any) error {
	env, err := NewEnvelope(t, id, body)
	if err != nil {
		return err
	}
	return w.Write(env)
}

// Negotiate picks the highest version present in both lists, or returns
// an *Error with CodeUnsupportedVersion naming both.
func Negotiate(theirs []int) (int, error) {
	best := 0
	for _, v := range theirs {
		for _, mine := range SupportedVersions {
			if v == mine && v > best {
				best = v
			}
		}
	}
	if best == 0 {
		return 0, Errorf(CodeUnsupportedVersion,
			"upgrade the older of console and agent so that both speak a common version",
			"no common protocol version: client speaks %v, agent speaks %v", theirs, SupportedVersions)
	}
	return best, nil
}
