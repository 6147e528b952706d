package registry

// The catalogue of registry attributes: every attribute the registry holds,
// the field of the delivery format that carries it, the persons column that
// holds its current value and the OIDC claim (and member) that can carry it
// to a relying party. Import, storage, history and — in a later slice —
// legal authorisations and release all key on Attribute.Name, so a name,
// once published, is never changed.

// Field indexes of a delivery record, in the order of the CSV header
// (CSVHeader) and of Record.Fields.
const (
	FOp = iota
	FRef
	FFamilyName
	FGivenNames
	FBirthDate
	FSex
	FNAM
	FCardExpiry
	FCardSeq
	FCivicNumber
	FStreet
	FUnit
	FMunicipality
	FPostalCode
	FLanguage
	FDeathDate
	FEffectiveDate
	// FBirthFamilyName, the family name at birth, came with the second
	// layout of the CSV header (a column added at the end; files with the
	// first layout are still read: see LegacyFields).
	FBirthFamilyName
	NumFields
)

// LegacyFields is the number of fields of the first layout of the data
// file, before birth_family_name: a CSV file whose header is the first
// LegacyFields names of CSVHeader holds lines of that many fields, whose
// missing fields are empty.
const LegacyFields = FBirthFamilyName

// CSVHeader is the fixed first line of a CSV data file and the member names
// of a JSON Lines record, indexed by the F… constants.
var CSVHeader = [NumFields]string{
	"op", "ref", "family_name", "given_names", "birth_date", "sex", "nam", "card_expiry", "card_seq",
	"civic_number", "street", "unit", "municipality", "postal_code", "language", "death_date",
	"effective_date", "birth_family_name",
}

// Attribute declares one registry attribute.
type Attribute struct {
	// Name is the stable name authorisations, history and audit events use.
	Name string
	// Field is the index of the delivery field that carries it.
	Field int
	// Column is the persons column that holds the current value.
	Column string
	// Claim is the OIDC claim that carries the attribute, "" when it is
	// never released as a claim (health-card data serve only proofing).
	Claim string
	// Member is the member of Claim for attributes released inside a JSON
	// object claim (address), "" otherwise.
	Member string
	// Scope is the scope a client asks to get Claim.
	Scope string
	// Consentable says that the law lets the citizen's consent stand in
	// for a legal authorisation when the attribute is communicated to a
	// service (internal/legal): identity and contact data the citizen may
	// share about themselves. The health-insurance number (whose use the
	// Health Insurance Act restricts), health-card data and the date of
	// death leave only under an authorisation.
	Consentable bool
}

// Attributes is the catalogue, in delivery-field order.
var Attributes = []Attribute{
	{Name: "family_name", Field: FFamilyName, Column: "family_name", Claim: "family_name", Scope: "profile", Consentable: true},
	{Name: "given_names", Field: FGivenNames, Column: "given_name", Claim: "given_name", Scope: "profile", Consentable: true},
	{Name: "birth_date", Field: FBirthDate, Column: "birth_date", Claim: "birthdate", Scope: "profile", Consentable: true},
	// Released as gender: F female, M male, X other.
	{Name: "sex", Field: FSex, Column: "sex", Claim: "gender", Scope: "profile", Consentable: true},
	{Name: "health_insurance_number", Field: FNAM, Column: "health_no", Claim: "sqin_health_insurance_number", Scope: "sqin_health"},
	{Name: "health_card_expiry", Field: FCardExpiry, Column: "card_expiry"},
	{Name: "health_card_sequence", Field: FCardSeq, Column: "card_seq"},
	{Name: "address_civic_number", Field: FCivicNumber, Column: "civic_number", Claim: "address", Member: "street_address", Scope: "address", Consentable: true},
	{Name: "address_street", Field: FStreet, Column: "street", Claim: "address", Member: "street_address", Scope: "address", Consentable: true},
	{Name: "address_unit", Field: FUnit, Column: "unit", Claim: "address", Member: "street_address", Scope: "address", Consentable: true},
	{Name: "address_municipality", Field: FMunicipality, Column: "municipality", Claim: "address", Member: "locality", Scope: "address", Consentable: true},
	{Name: "address_postal_code", Field: FPostalCode, Column: "postal_code", Claim: "address", Member: "postal_code", Scope: "address", Consentable: true},
	// Released as locale ("fr-CA", "en-CA").
	{Name: "language", Field: FLanguage, Column: "language", Claim: "locale", Scope: "profile", Consentable: true},
	{Name: "death_date", Field: FDeathDate, Column: "death_date", Claim: "sqin_death_date", Scope: "sqin_vital"},
	// The family name at birth, from which the health-insurance number's
	// letters come (a married name or a name changed later does not change
	// the number); empty when the source did not deliver it. Kept for that
	// check and for matching, never released as a claim.
	{Name: "birth_family_name", Field: FBirthFamilyName, Column: "birth_family_name", Consentable: true},
}

// AttributeByName returns the attribute called name.
func AttributeByName(name string) (Attribute, bool) {
	for _, a := range Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return Attribute{}, false
}

// ConsentAllowed reports whether a consent may stand in for an
// authorisation for the attribute called name.
func ConsentAllowed(name string) bool {
	a, ok := AttributeByName(name)
	return ok && a.Consentable
}

// AttributesForClaim returns the attributes a claim carries (several for
// address).
func AttributesForClaim(claim string) []Attribute {
	var as []Attribute
	for _, a := range Attributes {
		if a.Claim == claim && claim != "" {
			as = append(as, a)
		}
	}
	return as
}
