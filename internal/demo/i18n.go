package demo

import "fmt"

// The demo service speaks French by default and English on request. Its
// messages live here rather than in SQIN's catalogue: it plays a service
// of another organisation and shares nothing with SQIN but the protocol.

const (
	langFR = "fr"
	langEN = "en"
)

// Non-breaking spaces, as French typography wants them before « : » and
// inside guillemets.
const nb = "\u00a0"

var messages = map[string]map[string]string{
	langFR: {
		"site.org":     "Ministère de la Famille",
		"site.service": "Service en ligne de démonstration",
		"site.name":    "Service en ligne de démonstration — Ministère de la Famille",
		"site.notice":  "Démonstration" + nb + ": ce service est fictif. Il ne traite que des renseignements fictifs.",
		"skip":         "Aller au contenu principal",
		"lang.switch":  "English",
		"footer":       "Service de démonstration du projet SQIN, relié par OpenID Connect au service québécois d'identité numérique de démonstration.",

		"home.title":        "Accéder à votre dossier en ligne",
		"home.intro":        "Ce site joue le rôle du service en ligne d'un organisme public. Il ne gère aucun mot de passe" + nb + ": il confie l'authentification de ses usagers à SQIN, le service québécois d'identité numérique, au moyen du protocole OpenID Connect.",
		"home.steps":        "Ce que montre la démonstration",
		"home.step1":        "Vous choisissez le niveau d'assurance que le service exige, puis vous sélectionnez le bouton «" + nb + "Se connecter avec SQIN" + nb + "».",
		"home.step2":        "Vous êtes dirigé vers SQIN. Vous vous y authentifiez avec un compte de démonstration et acceptez que vos renseignements soient transmis au service.",
		"home.step3":        "SQIN vous renvoie ici. Le service vérifie la réponse (paramètre state, PKCE, signature du jeton d'identité, nonce), puis affiche les renseignements reçus.",
		"home.accounts":     "Les comptes de démonstration (citoyen1@demo.sqin.test, etc.) et leur mot de passe sont affichés dans le terminal où «" + nb + "sqin serve --demo" + nb + "» a été lancé.",
		"home.form":         "Se connecter",
		"home.acr.legend":   "Niveau d'assurance exigé par le service",
		"home.acr.none":     "Aucun niveau particulier",
		"home.acr.1":        "Niveau 1 — courriel vérifié et mot de passe",
		"home.acr.2":        "Niveau 2 — identité vérifiée auprès du registre",
		"home.acr.3":        "Niveau 3 — identité vérifiée en personne",
		"home.prompt":       "Exiger une nouvelle authentification, même si j'ai déjà une session SQIN",
		"home.login":        "Se connecter avec SQIN",
		"home.signedin":     "Vous êtes connecté à ce service.",
		"home.signedin.see": "Voir les renseignements reçus",
		"home.loggedout":    "Vous êtes déconnecté de ce service et de SQIN.",

		"profile.title":         "Renseignements reçus de SQIN",
		"profile.summary":       "Résumé de la connexion",
		"profile.acr":           "Niveau d'assurance obtenu",
		"profile.acr.requested": "Niveau d'assurance exigé",
		"profile.acr.any":       "Aucun niveau particulier",
		"profile.scopes":        "Portées accordées",
		"profile.below":         "Attention" + nb + ": le niveau d'assurance obtenu est inférieur au niveau exigé. Un service réel refuserait l'accès ou demanderait une nouvelle authentification.",
		"profile.idtoken":       "Jeton d'identité",
		"profile.idtoken.cap":   "Renseignements contenus dans le jeton d'identité (ID token) signé par SQIN",
		"profile.userinfo":      "Point de terminaison UserInfo",
		"profile.userinfo.cap":  "Renseignements obtenus du point de terminaison UserInfo de SQIN",
		"profile.userinfo.fail": "Les renseignements du point de terminaison UserInfo n'ont pas pu être obtenus. Ceux du jeton d'identité sont affichés ci-dessus.",
		"profile.col.label":     "Renseignement",
		"profile.col.claim":     "Revendication",
		"profile.col.value":     "Valeur",
		"profile.raw":           "Contenu brut (JSON)",
		"profile.logout":        "Se déconnecter",
		"profile.logout.help":   "Vous serez aussi déconnecté de SQIN.",

		"yes": "Oui",
		"no":  "Non",
		"acr": "Niveau d'assurance %s",

		"error.title":                          "La connexion n'a pas pu être établie",
		"error.retry":                          "Recommencer la connexion",
		"error.home":                           "Retour à l'accueil",
		"error.detail":                         "Détail technique fourni par le service d'authentification" + nb + ":",
		"error.code":                           "Code d'erreur" + nb + ":",
		"error.state":                          "La réponse reçue ne correspond pas à votre demande de connexion (paramètre state). Elle a peut-être été modifiée ou provient d'une autre fenêtre. Recommencez la connexion.",
		"error.expired":                        "Votre demande de connexion a expiré ou a déjà été utilisée. Recommencez la connexion.",
		"error.issuer":                         "La réponse ne provient pas du service d'authentification attendu.",
		"error.nocode":                         "La réponse du service d'authentification est incomplète" + nb + ": elle ne contient pas de code d'autorisation.",
		"error.exchange":                       "Le service n'a pas pu obtenir vos jetons auprès de SQIN.",
		"error.idtoken":                        "Le jeton d'identité reçu n'est pas valide (signature, émetteur, destinataire ou expiration).",
		"error.nonce":                          "Le jeton d'identité reçu ne correspond pas à votre demande de connexion (nonce).",
		"error.athash":                         "Le jeton d'accès reçu ne correspond pas au jeton d'identité.",
		"error.subject":                        "Les renseignements reçus du point UserInfo ne concernent pas la personne authentifiée.",
		"error.discovery":                      "Le service d'authentification SQIN ne répond pas encore. Réessayez dans quelques secondes.",
		"error.badparam":                       "Un paramètre de la demande n'est pas valide.",
		"error.busy":                           "Trop de connexions sont en cours. Réessayez dans quelques instants.",
		"error.internal":                       "Une erreur imprévue est survenue. Réessayez dans quelques instants.",
		"error.csrf.title":                     "Action refusée",
		"error.csrf":                           "Le formulaire envoyé n'est pas valide ou a expiré. Retournez à la page précédente, rechargez-la et réessayez.",
		"error.notfound.title":                 "Page introuvable",
		"error.notfound":                       "La page demandée n'existe pas.",
		"op.access_denied":                     "Vous avez refusé de transmettre vos renseignements à ce service, ou l'accès a été refusé. Aucun renseignement n'a été transmis.",
		"op.login_required":                    "Vous devez vous authentifier auprès de SQIN pour continuer.",
		"op.consent_required":                  "Votre consentement est nécessaire pour transmettre vos renseignements à ce service.",
		"op.interaction_required":              "SQIN a besoin que vous interveniez (authentification ou consentement) pour continuer.",
		"op.account_selection_required":        "Vous devez choisir un compte SQIN pour continuer.",
		"op.unmet_authentication_requirements": "Le niveau d'assurance exigé par le service n'a pas pu être atteint avec votre compte.",
		"op.invalid_request":                   "SQIN a refusé la demande de connexion du service. Le service est peut-être mal configuré.",
		"op.server_error":                      "Le service d'authentification SQIN a éprouvé un problème. Réessayez dans quelques instants.",
		"op.other":                             "SQIN a refusé la demande de connexion.",
	},
	langEN: {
		"site.org":     "Ministère de la Famille",
		"site.service": "Demonstration online service",
		"site.name":    "Demonstration online service — Ministère de la Famille",
		"site.notice":  "Demonstration: this service is fictitious. It handles fictitious information only.",
		"skip":         "Skip to main content",
		"lang.switch":  "Français",
		"footer":       "Demonstration service of the SQIN project, connected through OpenID Connect to the demonstration Québec digital identity service.",

		"home.title":        "Access your online file",
		"home.intro":        "This site plays the online service of a public body. It manages no passwords: it entrusts the authentication of its users to SQIN, the Québec digital identity service, through the OpenID Connect protocol.",
		"home.steps":        "What the demonstration shows",
		"home.step1":        "You choose the level of assurance the service requires, then select the “Sign in with SQIN” button.",
		"home.step2":        "You are taken to SQIN. There you authenticate with a demonstration account and agree that your information be sent to the service.",
		"home.step3":        "SQIN sends you back here. The service checks the response (state parameter, PKCE, ID token signature, nonce), then shows the information it received.",
		"home.accounts":     "Demonstration accounts (citoyen1@demo.sqin.test, etc.) and their password are printed in the terminal where “sqin serve --demo” was started.",
		"home.form":         "Sign in",
		"home.acr.legend":   "Level of assurance the service requires",
		"home.acr.none":     "No particular level",
		"home.acr.1":        "Level 1 — verified email and password",
		"home.acr.2":        "Level 2 — identity verified against the registry",
		"home.acr.3":        "Level 3 — identity verified in person",
		"home.prompt":       "Require a new authentication, even if I already have a SQIN session",
		"home.login":        "Sign in with SQIN",
		"home.signedin":     "You are signed in to this service.",
		"home.signedin.see": "See the information received",
		"home.loggedout":    "You are signed out of this service and of SQIN.",

		"profile.title":         "Information received from SQIN",
		"profile.summary":       "Sign-in summary",
		"profile.acr":           "Level of assurance reached",
		"profile.acr.requested": "Level of assurance required",
		"profile.acr.any":       "No particular level",
		"profile.scopes":        "Scopes granted",
		"profile.below":         "Warning: the level of assurance reached is lower than the level required. A real service would refuse access or ask for a new authentication.",
		"profile.idtoken":       "ID token",
		"profile.idtoken.cap":   "Information contained in the ID token signed by SQIN",
		"profile.userinfo":      "UserInfo endpoint",
		"profile.userinfo.cap":  "Information obtained from SQIN's UserInfo endpoint",
		"profile.userinfo.fail": "The information from the UserInfo endpoint could not be obtained. That of the ID token is shown above.",
		"profile.col.label":     "Information",
		"profile.col.claim":     "Claim",
		"profile.col.value":     "Value",
		"profile.raw":           "Raw content (JSON)",
		"profile.logout":        "Sign out",
		"profile.logout.help":   "You will also be signed out of SQIN.",

		"yes": "Yes",
		"no":  "No",
		"acr": "Level of assurance %s",

		"error.title":                          "Sign-in could not be completed",
		"error.retry":                          "Start signing in again",
		"error.home":                           "Back to the home page",
		"error.detail":                         "Technical detail from the authentication service:",
		"error.code":                           "Error code:",
		"error.state":                          "The response received does not match your sign-in request (state parameter). It may have been altered or come from another window. Start signing in again.",
		"error.expired":                        "Your sign-in request expired or was already used. Start signing in again.",
		"error.issuer":                         "The response does not come from the expected authentication service.",
		"error.nocode":                         "The authentication service's response is incomplete: it holds no authorization code.",
		"error.exchange":                       "The service could not obtain your tokens from SQIN.",
		"error.idtoken":                        "The ID token received is not valid (signature, issuer, audience or expiry).",
		"error.nonce":                          "The ID token received does not match your sign-in request (nonce).",
		"error.athash":                         "The access token received does not match the ID token.",
		"error.subject":                        "The information received from the UserInfo endpoint is not about the authenticated person.",
		"error.discovery":                      "The SQIN authentication service is not answering yet. Try again in a few seconds.",
		"error.badparam":                       "A parameter of the request is not valid.",
		"error.busy":                           "Too many sign-ins are under way. Try again in a moment.",
		"error.internal":                       "An unexpected error occurred. Try again in a moment.",
		"error.csrf.title":                     "Action refused",
		"error.csrf":                           "The form sent is not valid or has expired. Go back to the previous page, reload it and try again.",
		"error.notfound.title":                 "Page not found",
		"error.notfound":                       "The page you asked for does not exist.",
		"op.access_denied":                     "You declined to send your information to this service, or access was denied. No information was sent.",
		"op.login_required":                    "You must authenticate with SQIN to continue.",
		"op.consent_required":                  "Your consent is needed to send your information to this service.",
		"op.interaction_required":              "SQIN needs you to act (authenticate or consent) to continue.",
		"op.account_selection_required":        "You must choose a SQIN account to continue.",
		"op.unmet_authentication_requirements": "The level of assurance the service requires could not be reached with your account.",
		"op.invalid_request":                   "SQIN refused the service's sign-in request. The service may be misconfigured.",
		"op.server_error":                      "The SQIN authentication service had a problem. Try again in a moment.",
		"op.other":                             "SQIN refused the sign-in request.",
	},
}

// opErrorKeys maps OAuth and OpenID Connect error codes to a message.
var opErrorKeys = map[string]string{
	"access_denied":                     "op.access_denied",
	"login_required":                    "op.login_required",
	"consent_required":                  "op.consent_required",
	"interaction_required":              "op.interaction_required",
	"account_selection_required":        "op.account_selection_required",
	"unmet_authentication_requirements": "op.unmet_authentication_requirements",
	"invalid_request":                   "op.invalid_request",
	"invalid_request_uri":               "op.invalid_request",
	"invalid_request_object":            "op.invalid_request",
	"invalid_scope":                     "op.invalid_request",
	"unauthorized_client":               "op.invalid_request",
	"unsupported_response_type":         "op.invalid_request",
	"request_not_supported":             "op.invalid_request",
	"request_uri_not_supported":         "op.invalid_request",
	"registration_not_supported":        "op.invalid_request",
	"server_error":                      "op.server_error",
	"temporarily_unavailable":           "op.server_error",
}

// t returns the message key in lang, formatted with args; the French one
// when the translation is missing, the key itself when both are.
func t(lang, key string, args ...any) string {
	s, ok := messages[lang][key]
	if !ok {
		if s, ok = messages[langFR][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}
