package membudget

import "testing"

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "268435456", want: 256 << 20},
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "1.5GiB", want: 3 << 29},
		{in: "512Mi", want: 512 << 20},
		{in: "512M", want: 512 << 20},
		{in: "2G", want: 2 << 30},
		{in: "64KiB", want: 64 << 10},
		{in: "500MB", want: 500_000_000},
		{in: "1000B", want: 1000},
		{in: " 256 MiB ", want: 256 << 20},
		{in: "0", want: 0},
		{in: "", wantErr: true},
		{in: "MiB", wantErr: true},
		{in: "-1GiB", wantErr: true},
		{in: "256mib", wantErr: true},
		{in: "lots", wantErr: true},
		{in: "1e30GiB", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 900: "900B", 256 << 20: "256MiB", 3 << 29: "1.5GiB", 1_000_000: "976.6KiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
	var z Size
	if err := z.Set("1GiB"); err != nil || z.String() != "1GiB" || int64(z) != 1<<30 {
		t.Errorf("Size.Set(1GiB): %v, %s", err, z.String())
	}
}
