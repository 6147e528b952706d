package registry

// Tables the generator draws from. Weights are relative and approximate:
// they give plausible proportions, not statistics to quote. Every string is
// in Unicode NFC (a test checks it).

type weightedName struct {
	name   string
	weight uint32
}

// Family names, French-speaking majority: the most frequent in Québec first
// (weights roughly in thousands of bearers), then names that came with
// later immigration, common in Montréal.
var frFamilyNames = []weightedName{
	{"Tremblay", 80}, {"Gagnon", 46}, {"Roy", 45}, {"Côté", 36}, {"Bouchard", 32},
	{"Gauthier", 31}, {"Morin", 29}, {"Lavoie", 27}, {"Fortin", 27}, {"Gagné", 26},
	{"Ouellet", 24}, {"Pelletier", 24}, {"Bélanger", 22}, {"Lévesque", 22}, {"Bergeron", 21},
	{"Leblanc", 20}, {"Paquette", 20}, {"Girard", 19}, {"Simard", 19}, {"Boucher", 18},
	{"Caron", 17}, {"Beaulieu", 16}, {"Cloutier", 16}, {"Dubé", 15}, {"Poirier", 15},
	{"Fournier", 15}, {"Lapointe", 15}, {"Leclerc", 14}, {"Lefebvre", 14}, {"Poulin", 14},
	{"Thibault", 13}, {"St-Pierre", 13}, {"Nadeau", 13}, {"Martin", 13}, {"Landry", 12},
	{"Martel", 12}, {"Bédard", 12}, {"Grenier", 12}, {"Lessard", 12}, {"Bernier", 12},
	{"Richard", 12}, {"Michaud", 11}, {"Hébert", 11}, {"Desjardins", 11}, {"Couture", 11},
	{"Turcotte", 10}, {"Lachance", 10}, {"Parent", 10}, {"Blais", 10}, {"Gosselin", 10},
	{"Savard", 10}, {"Proulx", 10}, {"Beaudoin", 10}, {"Demers", 10}, {"Perreault", 10},
	{"Boudreau", 9}, {"Lemieux", 9}, {"Cyr", 9}, {"Perron", 9}, {"Dufour", 9},
	{"Dion", 9}, {"Mercier", 9}, {"Bolduc", 9}, {"Bérubé", 9}, {"Boisvert", 8},
	{"Langlois", 8}, {"Ménard", 8}, {"Thériault", 8}, {"Lacroix", 8}, {"Gilbert", 8},
	{"Charbonneau", 8}, {"Lemay", 8}, {"Vallée", 7}, {"Dupuis", 7}, {"Rousseau", 7},
	{"Laflamme", 7}, {"Giroux", 7}, {"Robitaille", 7}, {"Vachon", 7}, {"Labbé", 7},
	{"Trudel", 6}, {"Larouche", 6}, {"Brassard", 6}, {"Beauchamp", 6}, {"Plante", 6},
	{"Rioux", 6}, {"Fillion", 5}, {"Guay", 5}, {"Jean", 5}, {"Lalonde", 5},
	{"Champagne", 5}, {"Paradis", 5}, {"Harvey", 5}, {"Lepage", 5}, {"Brisson", 4},
	{"St-Onge", 4}, {"Ste-Marie", 3}, {"D'Amours", 3}, {"Des Rosiers", 2}, {"Bélair", 3},
	{"Lévêque", 2}, {"Doré", 3}, {"Goulet", 4}, {"Émond", 3}, {"Ély", 1},
	{"Joseph", 6}, {"Jean-Baptiste", 4}, {"Pierre", 4}, {"Nguyen", 6}, {"Tran", 3},
	{"Haddad", 3}, {"Khoury", 2}, {"Benali", 2}, {"Traoré", 2}, {"Diallo", 2},
	{"Rossi", 2}, {"Santos", 2}, {"Ng", 1}, {"Li", 2}, {"Wang", 2},
	{"Öztürk", 1}, {"Gagnon-Tremblay", 1}, {"Côté-Roy", 1},
}

// Family names, English-speaking minority.
var enFamilyNames = []weightedName{
	{"Smith", 10}, {"Brown", 7}, {"Wilson", 6}, {"Johnson", 5}, {"Campbell", 5},
	{"MacDonald", 5}, {"Murphy", 5}, {"O'Brien", 4}, {"Kelly", 4}, {"Stewart", 4},
	{"Scott", 4}, {"Taylor", 4}, {"Robertson", 3}, {"Fraser", 3}, {"Miller", 3},
	{"Cohen", 3}, {"Levy", 2}, {"Ryan", 3}, {"Young", 3}, {"Thompson", 3},
	{"Anderson", 2}, {"Morrison", 2}, {"McLean", 2}, {"Greenberg", 2}, {"Patel", 2},
}

// Given names by sex and generation: the names common for people born
// before 1960, from 1960 to 1984, and from 1985.
var frGiven = [2][3][]weightedName{
	{ // women
		{
			{"Marie", 20}, {"Jeannine", 6}, {"Gisèle", 6}, {"Thérèse", 7}, {"Lise", 8},
			{"Denise", 8}, {"Pierrette", 5}, {"Monique", 9}, {"Jacqueline", 7}, {"Huguette", 5},
			{"Claudette", 6}, {"Rita", 4}, {"Yvette", 4}, {"Louise", 8}, {"Françoise", 6},
			{"Ginette", 7}, {"Micheline", 6}, {"Nicole", 9}, {"Diane", 8}, {"Carmen", 4},
			{"Réjeanne", 4}, {"Lucille", 4}, {"Madeleine", 5}, {"Suzanne", 7}, {"Colette", 4},
			{"Raymonde", 3}, {"Gaétane", 3}, {"Cécile", 4}, {"Noëlla", 2}, {"Jeanne-d'Arc", 2},
		},
		{
			{"Nathalie", 12}, {"Isabelle", 10}, {"Julie", 12}, {"Chantal", 8}, {"Sylvie", 9},
			{"Johanne", 7}, {"Manon", 8}, {"Josée", 7}, {"Line", 5}, {"Caroline", 9},
			{"Marie-Claude", 6}, {"Mélanie", 9}, {"Annie", 8}, {"Stéphanie", 8}, {"Karine", 7},
			{"Geneviève", 7}, {"Nancy", 5}, {"Sonia", 5}, {"France", 3}, {"Brigitte", 4},
			{"Marie-Josée", 5}, {"Valérie", 6}, {"Véronique", 6}, {"Catherine", 5}, {"Hélène", 4},
			{"Danielle", 5}, {"Martine", 5}, {"Anne-Marie", 4}, {"Nadia", 3}, {"Marie-Hélène", 3},
		},
		{
			{"Marie-Ève", 9}, {"Audrey", 8}, {"Jessica", 6}, {"Vanessa", 6}, {"Camille", 9},
			{"Sarah", 8}, {"Laurence", 8}, {"Émilie", 9}, {"Léa", 10}, {"Rosalie", 7},
			{"Florence", 8}, {"Océane", 5}, {"Justine", 6}, {"Noémie", 7}, {"Mégane", 4},
			{"Chloé", 7}, {"Gabrielle", 8}, {"Jade", 6}, {"Zoé", 7}, {"Alice", 6},
			{"Béatrice", 5}, {"Élodie", 5}, {"Maude", 5}, {"Marie-Pier", 5}, {"Andréanne", 4},
			{"Ariane", 5}, {"Maïka", 3}, {"Emma", 7}, {"Juliette", 5}, {"Charlotte", 6},
			{"Maëlle", 3}, {"Coralie", 4}, {"Amélie", 5}, {"Yasmine", 3}, {"Ève", 3},
		},
	},
	{ // men
		{
			{"Jean", 18}, {"Pierre", 10}, {"Gilles", 9}, {"Jacques", 10}, {"Michel", 12},
			{"Claude", 9}, {"Roger", 6}, {"Marcel", 7}, {"Gaston", 4}, {"Réal", 5},
			{"Gaétan", 6}, {"Yvon", 6}, {"André", 10}, {"Robert", 7}, {"Fernand", 4},
			{"Guy", 7}, {"Raymond", 6}, {"Denis", 7}, {"Maurice", 4}, {"Roland", 4},
			{"Laurent", 4}, {"Normand", 5}, {"Jean-Guy", 5}, {"Jean-Claude", 5}, {"Jean-Paul", 4},
			{"Réjean", 5}, {"Léo", 3}, {"Lucien", 4}, {"Georges", 4}, {"Bernard", 4},
		},
		{
			{"Stéphane", 10}, {"Martin", 11}, {"Daniel", 9}, {"Sylvain", 8}, {"Éric", 10},
			{"Patrick", 9}, {"Alain", 8}, {"Luc", 7}, {"Mario", 6}, {"Sébastien", 9},
			{"François", 9}, {"Yves", 6}, {"Marc", 8}, {"Richard", 5}, {"Christian", 7},
			{"Jean-François", 8}, {"Dany", 4}, {"Steve", 4}, {"Pascal", 6}, {"Carl", 3},
			{"Benoît", 6}, {"Frédéric", 7}, {"Jérôme", 5}, {"Marc-André", 6}, {"Mathieu", 7},
			{"Nicolas", 6}, {"Simon", 6}, {"Jean-Sébastien", 4}, {"Hugo", 4}, {"Karim", 2},
		},
		{
			{"Alexandre", 10}, {"Maxime", 9}, {"Samuel", 9}, {"William", 10}, {"Gabriel", 9},
			{"Félix", 9}, {"Olivier", 9}, {"Vincent", 6}, {"Jonathan", 6}, {"Kevin", 5},
			{"Philippe", 7}, {"Antoine", 8}, {"Nathan", 7}, {"Thomas", 8}, {"Xavier", 7},
			{"Jérémy", 5}, {"Louis", 7}, {"Raphaël", 7}, {"Zachary", 6}, {"Étienne", 6},
			{"Justin", 4}, {"Guillaume", 7}, {"Charles", 7}, {"Jacob", 6}, {"Émile", 5},
			{"Pier-Luc", 3}, {"Jean-Philippe", 5}, {"Marc-Antoine", 5}, {"Anthony", 4}, {"Noah", 5},
			{"Loïc", 3}, {"Mikaël", 3}, {"Éloi", 2}, {"Mohamed", 3}, {"Adam", 4},
		},
	},
}

var enGiven = [2][3][]weightedName{
	{
		{{"Margaret", 8}, {"Mary", 10}, {"Dorothy", 5}, {"Patricia", 6}, {"Barbara", 6}, {"Joan", 5}, {"Shirley", 4}, {"Elizabeth", 6}},
		{{"Jennifer", 9}, {"Lisa", 7}, {"Karen", 6}, {"Susan", 6}, {"Michelle", 7}, {"Kimberly", 5}, {"Heather", 5}, {"Sarah", 6}},
		{{"Emily", 9}, {"Jessica", 7}, {"Ashley", 6}, {"Hannah", 6}, {"Olivia", 8}, {"Megan", 5}, {"Chloe", 5}, {"Abigail", 4}},
	},
	{
		{{"John", 10}, {"William", 8}, {"James", 8}, {"Robert", 7}, {"George", 5}, {"Donald", 5}, {"Kenneth", 4}, {"Harold", 3}},
		{{"Michael", 10}, {"David", 9}, {"Christopher", 7}, {"Mark", 6}, {"Paul", 6}, {"Steven", 5}, {"Brian", 5}, {"Jason", 5}},
		{{"Ryan", 8}, {"Matthew", 8}, {"Daniel", 7}, {"Liam", 7}, {"Ethan", 7}, {"Nicholas", 5}, {"Tyler", 5}, {"Owen", 4}},
	},
}

// Given names used for sex X (any generation, either language).
var unisexGiven = []weightedName{
	{"Dominique", 5}, {"Camille", 5}, {"Sacha", 4}, {"Alex", 4}, {"Charlie", 3},
	{"Claude", 2}, {"Andréa", 2}, {"Noa", 2}, {"Morgan", 2}, {"Éden", 1},
}

// Birth years: weights proportional to the number of people of each birth
// year living in Québec in the mid-2020s (anchors, interpolated linearly
// in between): few survivors of the 1930s, the baby boom of 1946–1965,
// smaller cohorts since, lifted by immigration, a small boom around 2010.
var birthYearAnchors = []struct{ year, weight int }{
	{1930, 4}, {1935, 10}, {1940, 25}, {1945, 55}, {1950, 95}, {1955, 115},
	{1960, 120}, {1965, 110}, {1970, 100}, {1975, 100}, {1980, 105},
	{1985, 105}, {1990, 115}, {1995, 110}, {2000, 100}, {2005, 100},
	{2010, 110}, {2012, 110},
}

const (
	firstBirthYear = 1930
	lastBirthYear  = 2012
)

// Municipalities: weights roughly in thousands of inhabitants, the share
// of English speakers in percent, and forward sortation areas (the first
// 3 characters of the postal code) that serve them. G: east of Québec
// (Québec City and beyond), H: Montréal and Laval, J: west and south.
type municipality struct {
	name   string
	weight uint32
	enPct  uint32
	fsas   []string
}

var municipalities = []municipality{
	{"Montréal", 1760, 17, []string{"H1A", "H1E", "H1L", "H1V", "H1Y", "H2C", "H2G", "H2J", "H2L", "H2S", "H2V", "H2X", "H3A", "H3H", "H3K", "H3S", "H4A", "H4C", "H4E", "H4N"}},
	{"Québec", 550, 2, []string{"G1C", "G1E", "G1G", "G1J", "G1K", "G1L", "G1M", "G1R", "G1S", "G1V", "G1W", "G2A", "G2B", "G2C", "G2E", "G2G", "G3E", "G3J"}},
	{"Laval", 440, 8, []string{"H7A", "H7E", "H7G", "H7K", "H7L", "H7M", "H7N", "H7P", "H7T", "H7V", "H7W", "H7X"}},
	{"Gatineau", 290, 15, []string{"J8P", "J8R", "J8T", "J8V", "J8Y", "J8Z", "J9A", "J9H", "J9J"}},
	{"Longueuil", 255, 6, []string{"J4G", "J4H", "J4J", "J4K", "J4L", "J4M", "J4N", "J3Y", "J4V"}},
	{"Sherbrooke", 175, 5, []string{"J1E", "J1G", "J1H", "J1J", "J1K", "J1L", "J1M", "J1N"}},
	{"Saguenay", 145, 1, []string{"G7A", "G7B", "G7G", "G7H", "G7J", "G7K", "G7S", "G7X", "G7Y"}},
	{"Lévis", 150, 1, []string{"G6C", "G6J", "G6K", "G6V", "G6W", "G6X", "G6Y", "G6Z"}},
	{"Trois-Rivières", 140, 1, []string{"G8T", "G8V", "G8W", "G8Y", "G8Z", "G9A", "G9B", "G9C"}},
	{"Terrebonne", 120, 3, []string{"J6V", "J6W", "J6X", "J6Y"}},
	{"Saint-Jean-sur-Richelieu", 100, 3, []string{"J2W", "J2X", "J2Y", "J3A", "J3B"}},
	{"Repentigny", 88, 2, []string{"J5Y", "J5Z", "J6A"}},
	{"Brossard", 92, 20, []string{"J4W", "J4X", "J4Y", "J4Z"}},
	{"Drummondville", 80, 1, []string{"J2A", "J2B", "J2C", "J2E"}},
	{"Saint-Jérôme", 82, 2, []string{"J5L", "J7Y", "J7Z"}},
	{"Granby", 70, 3, []string{"J2G", "J2H", "J2J"}},
	{"Blainville", 60, 4, []string{"J7B", "J7C", "J7E"}},
	{"Saint-Hyacinthe", 58, 1, []string{"J2R", "J2S", "J2T"}},
	{"Shawinigan", 50, 1, []string{"G9N", "G9P", "G9R", "G9T"}},
	{"Dollard-Des Ormeaux", 49, 45, []string{"H9A", "H9B", "H9G"}},
	{"Rimouski", 49, 1, []string{"G5L", "G5M", "G5N"}},
	{"Victoriaville", 48, 1, []string{"G6P", "G6S", "G6T"}},
	{"Châteauguay", 50, 20, []string{"J6J", "J6K"}},
	{"Saint-Eustache", 45, 4, []string{"J7P", "J7R"}},
	{"Rouyn-Noranda", 43, 2, []string{"J9X", "J9Y"}},
	{"Vaudreuil-Dorion", 45, 25, []string{"J7V"}},
	{"Salaberry-de-Valleyfield", 42, 4, []string{"J6S", "J6T"}},
	{"Pointe-Claire", 33, 55, []string{"H9R", "H9S"}},
	{"Côte-Saint-Luc", 34, 60, []string{"H4V", "H4W", "H4X"}},
	{"Westmount", 21, 60, []string{"H3Y", "H3Z"}},
	{"Kirkland", 20, 50, []string{"H9H", "H9J"}},
	{"Beaconsfield", 19, 60, []string{"H9W"}},
	{"Magog", 28, 6, []string{"J1X"}},
	{"Joliette", 21, 1, []string{"J6E"}},
	{"Val-d'Or", 33, 3, []string{"J9P"}},
	{"Sept-Îles", 25, 3, []string{"G4R", "G4S"}},
	{"Baie-Comeau", 21, 2, []string{"G4Z", "G5C"}},
	{"Alma", 31, 1, []string{"G8B", "G8E"}},
	{"Rivière-du-Loup", 20, 1, []string{"G5R"}},
	{"Thetford Mines", 26, 1, []string{"G6G", "G6H"}},
	{"Saint-Georges", 33, 1, []string{"G5Y", "G5Z"}},
	{"Gaspé", 15, 8, []string{"G4X"}},
	{"Les Îles-de-la-Madeleine", 12, 5, []string{"G4T"}},
	{"Sainte-Anne-de-Beaupré", 3, 1, []string{"G0A"}},
	{"Baie-Saint-Paul", 7, 1, []string{"G3Z"}},
	{"Sutton", 4, 30, []string{"J0E"}},
}

// Street names, each with its generic (rue, boulevard…) as written in
// Québec addresses.
var streets = []weightedName{
	{"rue Principale", 12}, {"rue Saint-Jean", 6}, {"boulevard René-Lévesque", 4}, {"rue Sherbrooke", 4},
	{"chemin Sainte-Foy", 3}, {"avenue du Parc", 4}, {"rue des Érables", 6}, {"rue Notre-Dame", 6},
	{"boulevard Laurier", 3}, {"rue Saint-Joseph", 5}, {"rue de la Gauchetière", 2}, {"rue Wellington", 3},
	{"avenue des Pins", 3}, {"rue du Couvent", 3}, {"rang Saint-Paul", 2}, {"rue de l'Église", 6},
	{"avenue Cartier", 2}, {"rue Racine", 3}, {"rue Laval", 3}, {"rue des Lilas", 4},
	{"rue des Bouleaux", 4}, {"chemin du Lac", 4}, {"montée Sainte-Thérèse", 2}, {"côte Sainte-Catherine", 2},
	{"rue Champlain", 4}, {"boulevard Saint-Laurent", 3}, {"rue Jacques-Cartier", 4}, {"rue du Moulin", 3},
	{"avenue Maguire", 2}, {"rue Saint-Denis", 3}, {"rue Papineau", 2}, {"rue Frontenac", 3},
	{"rue des Peupliers", 3}, {"rue de la Rivière", 4}, {"boulevard Talbot", 2}, {"rue Marie-Victorin", 3},
	{"rue Gabrielle-Roy", 2}, {"rue Félix-Leclerc", 3}, {"avenue Royale", 2}, {"rue du Fleuve", 2},
	{"chemin des Patriotes", 2}, {"rue Saint-Georges", 3}, {"rue King Ouest", 2}, {"rue Queen", 2},
	{"rue Victoria", 3}, {"rue de Mésy", 1}, {"rue Émile-Nelligan", 2}, {"rue des Mésanges", 3},
}
