package pg_test

import (
	"testing"

	"github.com/hatui/hatui/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
