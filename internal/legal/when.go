package legal

import (
	"fmt"
	"sync"
	"time"
	_ "time/tzdata" // Québec's time zone on machines without a zone database
)

// Zone is Québec's time zone (America/Toronto covers most of the province),
// in which a date alone is read.
var Zone = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("America/Toronto")
	if err != nil {
		panic("legal: embedded time zone database lacks America/Toronto: " + err.Error())
	}
	return loc
})

// ParseWhen reads a start or end of an authorisation: an RFC 3339 time, or
// a date (YYYY-MM-DD) meaning midnight at the start of that day in
// Québec. A decree in force "until 31 March 2027" ends at 2027-04-01.
func ParseWhen(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation(time.DateOnly, s, Zone())
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a date (2027-04-01) nor a time (2027-04-01T00:00:00-04:00)", s)
	}
	return t, nil
}
