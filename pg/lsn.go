package pg

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log. Zero means none, as
// InvalidXLogRecPtr does in PostgreSQL.
type LSN uint64

// ParseLSN reads the text form PostgreSQL prints, such as "0/3000148":
// the high and low 32 bits in hexadecimal.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("LSN %q is not of the form XXXXXXXX/XXXXXXXX", s)
	}
	h, err := strconv.ParseUint(hi, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: high half is not hexadecimal", s)
	}
	l, err := strconv.ParseUint(lo, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("LSN %q: low half is not hexadecimal", s)
	}
	return LSN(h<<32 | l), nil
}

// String prints the LSN as PostgreSQL does.
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF)
}

// Sub returns l-o in bytes, or 0 when o is not behind l: a lag is never
// negative, and a standby momentarily reporting past the master's last
// flush is caught up, not ahead.
func (l LSN) Sub(o LSN) int64 {
	if o >= l {
		return 0
	}
	d := uint64(l - o)
	if d > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(d)
}

// Scan implements sql.Scanner for pg_lsn columns (sent as text); NULL is
// the zero LSN.
func (l *LSN) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*l = 0
		return nil
	case string:
		p, err := ParseLSN(v)
		*l = p
		return err
	case []byte:
		p, err := ParseLSN(string(v))
		*l = p
		return err
	}
	return fmt.Errorf("cannot read an LSN from %T", src)
}

// Value implements driver.Valuer so an LSN can be passed as a query
// argument (cast it with ::pg_lsn in the query).
func (l LSN) Value() (driver.Value, error) { return l.String(), nil }

// MarshalText implements encoding.TextMarshaler, for journals and JSON.
func (l LSN) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (l *LSN) UnmarshalText(b []byte) error {
	p, err := ParseLSN(string(b))
	if err != nil {
		return err
	}
	*l = p
	return nil
}
