package berofos

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
)

// readHex reads a testdata file of hex bytes with # comments.
func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for line := range strings.SplitSeq(string(raw), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, tok := range strings.Fields(line) {
			v, err := hex.DecodeString(tok)
			if err != nil {
				t.Fatalf("%s: bad hex %q", name, tok)
			}
			b = append(b, v...)
		}
	}
	return b
}

var exampleMAC = net.HardwareAddr{0x00, 0x19, 0x32, 0x00, 0x12, 0x1d}

func TestKickDatagramMatchesReference(t *testing.T) {
	want := readHex(t, "kick.hex")
	got := Datagram{Cmd: CmdKick, Payload: KickPayload(exampleMAC)}.Marshal()
	if !bytes.Equal(got, want) {
		t.Fatalf("kick datagram\n got % x\nwant % x", got, want)
	}
	if c := Checksum(CmdKick, KickPayload(exampleMAC)); c != 0x62 {
		t.Fatalf("checksum = %#02x, want 0x62 as in devices.md", c)
	}
	d, err := ParseDatagram(want)
	if err != nil {
		t.Fatalf("parse reference kick: %v", err)
	}
	if d.Cmd != CmdKick || !bytes.Equal(d.Payload[:6], exampleMAC) || d.Payload[6] != 0 {
		t.Fatalf("parsed kick = cmd %d payload % x", d.Cmd, d.Payload)
	}
}

func TestParseDatagramErrors(t *testing.T) {
	kick := readHex(t, "kick.hex")
	flip := bytes.Clone(kick)
	flip[len(flip)-1] ^= 0x01
	payloadFlip := bytes.Clone(kick)
	payloadFlip[7] ^= 0x80
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, errShort},
		{"prefix only", []byte("GBL\x04"), errShort},
		{"wrong prefix", []byte("GBL\x05\x0b\x00\x00"), errPrefix},
		{"wrong checksum", flip, errChecksum},
		{"payload corrupted", payloadFlip, errChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDatagram(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParseDatagram(% x) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestParseDiscoverReplyFromTestdata(t *testing.T) {
	raw := readHex(t, "discover_reply.hex")
	d, err := ParseDatagram(raw)
	if err != nil {
		t.Fatalf("parse datagram: %v", err)
	}
	if d.Cmd != CmdDiscover {
		t.Fatalf("cmd = %d, want %d", d.Cmd, CmdDiscover)
	}
	info, err := ParseDiscoverReply(d.Payload)
	if err != nil {
		t.Fatalf("parse reply: %v", err)
	}
	want := DeviceInfo{
		Name: "berofos", MAC: exampleMAC,
		IP:         netip.MustParseAddr("192.0.2.50"),
		Netmask:    netip.MustParseAddr("255.255.255.0"),
		Gateway:    netip.MustParseAddr("192.0.2.1"),
		HWMagic:    0x0050,
		Bootloader: "1.1", Firmware: "1.6",
		PHYConfig: 0xff, PHYState: 0x07,
		DHCP: true, HTTPAuth: true,
		HTTPPort: 80,
	}
	if !reflect.DeepEqual(info, want) {
		t.Fatalf("parsed\n got %+v\nwant %+v", info, want)
	}
	// And back: the simulator builds its replies with the inverse.
	if got := (Datagram{Cmd: CmdDiscover, Payload: MarshalDiscoverReply(info)}).Marshal(); !bytes.Equal(got, raw) {
		t.Fatalf("marshal round trip\n got % x\nwant % x", got, raw)
	}
}

func TestParseDiscoverReplyRejects(t *testing.T) {
	raw := readHex(t, "discover_reply.hex")
	payload := raw[5 : len(raw)-1]
	other := bytes.Clone(payload)
	other[7] = 0x77 // another beroNet model's magic
	for _, tc := range []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"short", payload[:29], "want at least 30"},
		{"other model", other, "not a berofos"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDiscoverReply(tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// Trailing bytes from a newer firmware are ignored.
	if _, err := ParseDiscoverReply(append(bytes.Clone(payload), 1, 2, 3)); err != nil {
		t.Fatalf("reply with trailing bytes: %v", err)
	}
}

func FuzzParseDiscoverDatagram(f *testing.F) {
	f.Add(readHex(f, "discover_reply.hex"))
	f.Add(readHex(f, "kick.hex"))
	f.Add([]byte("GBL\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDatagram(b)
		if err != nil {
			return
		}
		// A datagram that parses re-marshals to the same bytes.
		if got := d.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("re-marshal % x != % x", got, b)
		}
		info, err := ParseDiscoverReply(d.Payload)
		if err != nil {
			return
		}
		if len(info.MAC) != 6 || !info.IP.Is4() {
			t.Fatalf("parsed reply has MAC %v IP %v", info.MAC, info.IP)
		}
		_ = info.String()
	})
}
