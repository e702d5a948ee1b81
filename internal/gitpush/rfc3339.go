package gitpush

import "time"

// ParseRFC3339 parses an RFC 3339 time from bytes into the instant that
// time.Parse(time.RFC3339, string(b)) returns (its location may differ:
// callers use UTC), without allocating for the
// common shape "2006-01-02T15:04:05Z" or "...+01:00" (other shapes, such
// as fractional seconds, go through time.Parse).
func ParseRFC3339(b []byte) (time.Time, bool) {
	if t, ok := parseRFC3339Seconds(b); ok {
		return t, true
	}
	t, err := time.Parse(time.RFC3339, string(b))
	return t, err == nil
}

// parseRFC3339Seconds handles YYYY-MM-DDTHH:MM:SS followed by Z or
// ±HH:MM; ok is false for anything else, valid or not, so that time.Parse
// has the last word.
func parseRFC3339Seconds(b []byte) (time.Time, bool) {
	if len(b) != 20 && len(b) != 25 {
		return time.Time{}, false
	}
	if b[4] != '-' || b[7] != '-' || b[10] != 'T' || b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hour, ok4 := digits(b[11:13])
	minute, ok5 := digits(b[14:16])
	sec, ok6 := digits(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return time.Time{}, false
	}
	if month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || sec > 59 {
		return time.Time{}, false
	}
	offset := 0
	switch b[19] {
	case 'Z':
		if len(b) != 20 {
			return time.Time{}, false
		}
	case '+', '-':
		if len(b) != 25 || b[22] != ':' {
			return time.Time{}, false
		}
		oh, okh := digits(b[20:22])
		om, okm := digits(b[23:25])
		if !okh || !okm || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = (oh*60 + om) * 60
		if b[19] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.UTC)
	if t.Day() != day { // 31 April, 29 February of a common year
		return time.Time{}, false
	}
	return t.Add(-time.Duration(offset) * time.Second), true
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
