package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Québec's time zone, even where the system has no tz database
)

// claimLabels names the claims a public body's service may receive, in
// the order the profile page shows them; the others follow, sorted.
var claimLabels = []struct{ name, fr, en string }{
	{"sub", "Identifiant de l'usager propre à ce service", "User identifier specific to this service"},
	{"name", "Nom complet", "Full name"},
	{"given_name", "Prénom", "Given name"},
	{"middle_name", "Autre prénom", "Middle name"},
	{"family_name", "Nom de famille", "Family name"},
	{"birthdate", "Date de naissance", "Date of birth"},
	{"gender", "Genre", "Gender"},
	{"sex", "Sexe", "Sex"},
	{"email", "Adresse courriel", "Email address"},
	{"email_verified", "Adresse courriel vérifiée", "Email address verified"},
	{"phone_number", "Numéro de téléphone", "Phone number"},
	{"phone_number_verified", "Numéro de téléphone vérifié", "Phone number verified"},
	{"address", "Adresse", "Address"},
	{"locale", "Langue", "Language"},
	{"zoneinfo", "Fuseau horaire", "Time zone"},
	{"updated_at", "Dernière mise à jour des renseignements", "Information last updated"},
	{"acr", "Niveau d'assurance", "Level of assurance"},
	{"amr", "Méthodes d'authentification", "Authentication methods"},
	{"auth_time", "Moment de l'authentification", "Time of authentication"},
	{"iss", "Émetteur du jeton", "Token issuer"},
	{"aud", "Destinataire du jeton (client)", "Token audience (client)"},
	{"azp", "Partie autorisée", "Authorised party"},
	{"iat", "Émission du jeton", "Token issued"},
	{"exp", "Expiration du jeton", "Token expiry"},
	{"nbf", "Début de validité du jeton", "Token not valid before"},
	{"nonce", "Valeur à usage unique de la demande (nonce)", "Request nonce"},
	{"at_hash", "Empreinte du jeton d'accès", "Access token hash"},
	{"c_hash", "Empreinte du code d'autorisation", "Authorization code hash"},
	{"sid", "Identifiant de la session SQIN", "SQIN session identifier"},
	{"jti", "Identifiant du jeton", "Token identifier"},
}

var timeClaims = []string{"auth_time", "iat", "exp", "nbf", "updated_at"}

var amrLabels = map[string][2]string{
	"pwd":  {"mot de passe", "password"},
	"otp":  {"code à usage unique", "one-time code"},
	"mfa":  {"authentification multifacteur", "multi-factor authentication"},
	"hwk":  {"clé matérielle", "hardware key"},
	"swk":  {"clé logicielle", "software key"},
	"user": {"présence de l'usager", "user presence"},
	"pin":  {"NIP", "PIN"},
	"sms":  {"code par texto", "code by text message"},
	"face": {"reconnaissance faciale", "face recognition"},
	"fpt":  {"empreinte digitale", "fingerprint"},
}

var monthsFR = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"}

// quebec is the time zone dates are shown in.
var quebec = func() *time.Location {
	if l, err := time.LoadLocation("America/Toronto"); err == nil { // Montréal's rules
		return l
	}
	return time.UTC
}()

// claimRow is one line of a claims table.
type claimRow struct {
	Label string
	Name  string
	Lines []string
}

// decodeClaims reads a JSON object, keeping numbers exact.
func decodeClaims(raw []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// claimRows turns claims into table rows with labels in lang.
func claimRows(lang string, claims map[string]any) []claimRow {
	var rows []claimRow
	known := map[string]bool{}
	for _, l := range claimLabels {
		known[l.name] = true
		v, ok := claims[l.name]
		if !ok {
			continue
		}
		label := l.fr
		if lang == langEN {
			label = l.en
		}
		rows = append(rows, claimRow{Label: label, Name: l.name, Lines: formatClaim(lang, l.name, v)})
	}
	var rest []string
	for k := range claims {
		if !known[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		rows = append(rows, claimRow{Label: k, Name: k, Lines: formatClaim(lang, k, claims[k])})
	}
	return rows
}

// formatClaim renders a claim's value for people, one string per line.
func formatClaim(lang, name string, v any) []string {
	switch {
	case name == "acr":
		if s, ok := v.(string); ok {
			return []string{acrLabel(lang, s) + " (" + s + ")"}
		}
	case slices.Contains(timeClaims, name):
		if n, ok := v.(json.Number); ok {
			if sec, err := n.Int64(); err == nil {
				return []string{formatTime(lang, time.Unix(sec, 0))}
			}
		}
	case name == "birthdate":
		if s, ok := v.(string); ok {
			if d, err := time.Parse(time.DateOnly, s); err == nil {
				return []string{formatDate(lang, d)}
			}
		}
	case name == "amr":
		if list, ok := v.([]any); ok {
			var out []string
			for _, m := range list {
				s := fmt.Sprint(m)
				if l, ok := amrLabels[s]; ok {
					s += " (" + l[b2i(lang == langEN)] + ")"
				}
				out = append(out, s)
			}
			return out
		}
	case name == "address":
		if m, ok := v.(map[string]any); ok {
			return addressLines(m)
		}
	}
	switch v := v.(type) {
	case string:
		return []string{v}
	case bool:
		if v {
			return []string{t(lang, "yes")}
		}
		return []string{t(lang, "no")}
	case json.Number:
		return []string{v.String()}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, compactJSON(e))
		}
		return out
	case nil:
		return []string{"—"}
	}
	return []string{compactJSON(v)}
}

func compactJSON(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// addressLines renders an OpenID Connect address claim: its formatted
// member when there is one, else street, locality, region and postal code,
// country.
func addressLines(m map[string]any) []string {
	str := func(k string) string { s, _ := m[k].(string); return strings.TrimSpace(s) }
	if f := str("formatted"); f != "" {
		return strings.Split(strings.ReplaceAll(f, "\r\n", "\n"), "\n")
	}
	var lines []string
	if s := str("street_address"); s != "" {
		lines = append(lines, strings.Split(s, "\n")...)
	}
	var city []string
	for _, k := range []string{"locality", "region"} {
		if s := str(k); s != "" {
			city = append(city, s)
		}
	}
	l := strings.Join(city, " (")
	if len(city) == 2 {
		l += ")"
	}
	if pc := str("postal_code"); pc != "" {
		if l != "" {
			l += "  "
		}
		l += pc
	}
	if l != "" {
		lines = append(lines, l)
	}
	if s := str("country"); s != "" {
		lines = append(lines, s)
	}
	if len(lines) == 0 {
		return []string{compactJSON(m)}
	}
	return lines
}

// acrLabel names SQIN's levels of assurance: urn:sqin:loa:2 is « Niveau
// d'assurance 2 ». Other values are returned as they are.
func acrLabel(lang, acr string) string {
	if n := acrLevel(acr); n > 0 {
		return t(lang, "acr", strconv.Itoa(n))
	}
	return acr
}

// acrLevel returns N for urn:sqin:loa:N (1 to 9), 0 otherwise.
func acrLevel(acr string) int {
	n, ok := strings.CutPrefix(acr, "urn:sqin:loa:")
	if !ok || len(n) != 1 || n[0] < '1' || n[0] > '9' {
		return 0
	}
	return int(n[0] - '0')
}

func formatDate(lang string, d time.Time) string {
	if lang == langEN {
		return d.Format("January 2, 2006")
	}
	day := strconv.Itoa(d.Day())
	if d.Day() == 1 {
		day = "1er"
	}
	return day + " " + monthsFR[d.Month()-1] + " " + strconv.Itoa(d.Year())
}

func formatTime(lang string, tm time.Time) string {
	tm = tm.In(quebec)
	zone, _ := tm.Zone()
	if lang == langEN {
		return tm.Format("January 2, 2006, 3:04 PM ") + zone
	}
	switch zone {
	case "EST":
		zone = "HNE"
	case "EDT":
		zone = "HAE"
	}
	return fmt.Sprintf("%s à %d h %02d %s", formatDate(lang, tm), tm.Hour(), tm.Minute(), zone)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
