package failover

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
)

// A heartbeat is one text line, the same on a serial link and in a UDP
// datagram, so that it can be read on a serial console while debugging
// and a receiver resynchronises at the next newline after noise:
//
//	HB1 <cluster> <from> <to> <inc> <seq> <ackinc> <ack> <hold_us> <mac>\n
//
// inc is the sender's incarnation (16 hex digits, random per start), seq
// counts its heartbeats to this peer. ackinc/ack are the last incarnation
// and sequence number the sender received from the addressee (0 0 before
// any), and hold_us how long ago, in microseconds: together they make
// contact two-way (a sender knows its heartbeat arrived when it is echoed)
// and give the round-trip time. mac is HMAC-SHA256 with the cluster key
// over everything before it, truncated to 128 bits (RFC 2104 allows
// truncation to half the output); Heartbeat's authkeys signed with sha1.
const hbMagic = "HB1"

// maxHeartbeatLine bounds one heartbeat line: four names of at most 63
// bytes, five numbers, a MAC, separators.
const maxHeartbeatLine = 512

const macLen = 16

// heartbeat is one decoded heartbeat.
type heartbeat struct {
	Cluster string
	From    string
	To      string
	Inc     uint64
	Seq     uint64
	AckInc  uint64
	Ack     uint64
	HoldUS  uint64
}

// Heartbeat decoding errors; each says what a path's detail shows.
var (
	errHBMalformed = errors.New("malformed heartbeat")
	errHBMAC       = errors.New("bad heartbeat signature (wrong cluster key?)")
)

// encode returns the signed line, newline included.
func (h heartbeat) encode(key []byte) []byte {
	var b bytes.Buffer
	b.WriteString(hbMagic)
	for _, s := range []string{h.Cluster, h.From, h.To, fmt.Sprintf("%016x", h.Inc), strconv.FormatUint(h.Seq, 10),
		fmt.Sprintf("%016x", h.AckInc), strconv.FormatUint(h.Ack, 10), strconv.FormatUint(h.HoldUS, 10)} {
		b.WriteByte(' ')
		b.WriteString(s)
	}
	b.WriteByte(' ')
	mac := hmac.New(sha256.New, key)
	mac.Write(b.Bytes())
	b.WriteString(hex.EncodeToString(mac.Sum(nil)[:macLen]))
	b.WriteByte('\n')
	return b.Bytes()
}

// decodeHeartbeat parses and verifies one line (with or without its
// newline). A line that is not a heartbeat is errHBMalformed; one whose
// signature does not verify is errHBMAC.
func decodeHeartbeat(line, key []byte) (heartbeat, error) {
	line = bytes.TrimRight(line, "\r\n")
	if len(line) > maxHeartbeatLine {
		return heartbeat{}, fmt.Errorf("%w: %d bytes, at most %d", errHBMalformed, len(line), maxHeartbeatLine)
	}
	f := bytes.Split(line, []byte(" "))
	if len(f) != 10 || string(f[0]) != hbMagic {
		return heartbeat{}, fmt.Errorf("%w: want %s and 9 fields", errHBMalformed, hbMagic)
	}
	signed := line[:len(line)-len(f[9])]
	want, err := hex.DecodeString(string(f[9]))
	if err != nil || len(want) != macLen {
		return heartbeat{}, fmt.Errorf("%w: the signature is not %d hex bytes", errHBMalformed, macLen)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(signed)
	if !hmac.Equal(mac.Sum(nil)[:macLen], want) {
		return heartbeat{}, errHBMAC
	}
	var h heartbeat
	h.Cluster, h.From, h.To = string(f[1]), string(f[2]), string(f[3])
	for _, n := range []string{h.Cluster, h.From, h.To} {
		if !nameRE.MatchString(n) {
			return heartbeat{}, fmt.Errorf("%w: %q is not a name", errHBMalformed, n)
		}
	}
	nums := []struct {
		dst *uint64
		s   []byte
		hex bool
	}{{&h.Inc, f[4], true}, {&h.Seq, f[5], false}, {&h.AckInc, f[6], true}, {&h.Ack, f[7], false}, {&h.HoldUS, f[8], false}}
	for _, n := range nums {
		base := 10
		if n.hex {
			base = 16
		}
		v, err := strconv.ParseUint(string(n.s), base, 64)
		if err != nil {
			return heartbeat{}, fmt.Errorf("%w: %q is not a number", errHBMalformed, n.s)
		}
		*n.dst = v
	}
	return h, nil
}
