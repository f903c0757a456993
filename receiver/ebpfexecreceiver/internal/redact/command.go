package redact

import "strings"

// command names the programs whose short flags carry passwords. Other
// programs use -p, -a, -w and -u for ports, users and paths, so those flags
// are only masked for these commands.
//
// The command is not only argv[0]: a walker follows the words of a command
// line and switches command at every word that names one, so the rules also
// apply behind wrappers (sudo mysql, docker exec db mysql, kubectl exec pod
// -- mongo, env X=1 ldapsearch) and inside sh -c strings.
type command uint8

const (
	cmdOther         command = iota
	cmdCurl                  // -u / --user / -U / --proxy-user user:password
	cmdSSHPass               // -p password, -ppassword
	cmdMySQL                 // -ppassword (attached only: a bare -p prompts)
	cmdPostgres              // --password and -W only prompt
	cmdRedisCLI              // -a password
	cmdMongo                 // -p password, -ppassword (a bare -p prompts)
	cmdLDAP                  // -w password
	cmdLDAPPasswd            // -w bind password, -a old, -s new password
	cmdSMB                   // -U user%password
	cmdRegistryCLI           // docker, podman…: only their login takes -p
	cmdRegistryLogin         // docker login -p password
	cmdSQLCmd                // sqlcmd/bcp -P password
	cmdZip                   // zip/unzip -P password
	cmd7z                    // 7z -ppassword
)

// commandOf classifies a word naming a program, by its base name.
func commandOf(w string) command {
	base := w[strings.LastIndexByte(w, '/')+1:]
	if len(base) < 2 || len(base) > 13 {
		return cmdOther
	}
	switch base {
	case "curl":
		return cmdCurl
	case "sshpass":
		return cmdSSHPass
	case "mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow",
		"mysqlcheck", "mysqlpump", "mariadb", "mariadb-dump", "mariadb-admin":
		return cmdMySQL
	case "psql", "pg_dump", "pg_dumpall", "pg_restore", "pg_basebackup", "pgbench",
		"createdb", "dropdb", "createuser", "dropuser", "vacuumdb", "reindexdb", "clusterdb":
		return cmdPostgres
	case "redis-cli", "valkey-cli", "keydb-cli":
		return cmdRedisCLI
	case "mongo", "mongosh", "mongodump", "mongorestore", "mongoexport",
		"mongoimport", "mongostat", "mongotop", "mongofiles":
		return cmdMongo
	case "ldapsearch", "ldapadd", "ldapmodify", "ldapdelete", "ldapwhoami",
		"ldapcompare", "ldapmodrdn", "ldapexop", "ldapurl":
		return cmdLDAP
	case "ldappasswd":
		return cmdLDAPPasswd
	case "smbclient", "rpcclient", "smbcacls", "smbget", "net":
		return cmdSMB
	case "docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "finch":
		return cmdRegistryCLI
	case "sqlcmd", "bcp":
		return cmdSQLCmd
	case "zip", "unzip", "zipcloak":
		return cmdZip
	case "7z", "7za", "7zz", "7zr":
		return cmd7z
	}
	return cmdOther
}

// rule applies the command's own flags to one flag word a (a[0] == '-').
// Spans are offset by off. handled reports that the command gave the flag
// its meaning, so the generic secret-flag rule must not second-guess it
// (psql --password prompts and takes no value).
func (c command) rule(a string, off int, spans []span) (_ []span, next nextRule, handled bool) {
	attached := func(n int) []span { // -pSECRET: mask after the n-byte flag
		if len(a) > n {
			spans = append(spans, span{off + n, off + len(a)})
		}
		return spans
	}
	switch c {
	case cmdCurl:
		switch {
		case a == "-u" || a == "--user" || a == "-U" || a == "--proxy-user":
			return spans, maskNextAfterColon, true
		case len(a) > 2 && (strings.HasPrefix(a, "-u") || strings.HasPrefix(a, "-U")):
			if i := strings.IndexByte(a[2:], ':'); i >= 0 && 2+i+1 < len(a) {
				spans = append(spans, span{off + 2 + i + 1, off + len(a)})
			}
			return spans, noNext, true
		}
	case cmdSSHPass:
		if a == "-p" {
			return spans, maskNextWhole, true
		}
		if strings.HasPrefix(a, "-p") {
			return attached(2), noNext, true
		}
	case cmdMySQL:
		if strings.HasPrefix(a, "-p") {
			return attached(2), noNext, true
		}
	case cmdPostgres:
		if a == "--password" || a == "-W" {
			return spans, noNext, true
		}
	case cmdRedisCLI:
		if a == "-a" {
			return spans, maskNextWhole, true
		}
	case cmdMongo:
		if a == "-p" {
			return spans, maskNextNotPorts, true
		}
		if strings.HasPrefix(a, "-p") {
			return attached(2), noNext, true
		}
	case cmdLDAP, cmdLDAPPasswd:
		if a == "-w" || (c == cmdLDAPPasswd && (a == "-a" || a == "-s")) {
			return spans, maskNextWhole, true
		}
		if strings.HasPrefix(a, "-w") || (c == cmdLDAPPasswd && (strings.HasPrefix(a, "-a") || strings.HasPrefix(a, "-s"))) {
			return attached(2), noNext, true
		}
	case cmdSMB:
		switch {
		case a == "-U" || a == "--user":
			return spans, maskNextAfterPercent, true
		case strings.HasPrefix(a, "-U") || strings.HasPrefix(a, "--user="):
			if i := strings.IndexByte(a, '%'); i >= 0 && i+1 < len(a) {
				spans = append(spans, span{off + i + 1, off + len(a)})
			}
			return spans, noNext, true
		}
	case cmdRegistryLogin:
		if a == "-p" {
			return spans, maskNextWhole, true
		}
		if strings.HasPrefix(a, "-p") {
			return attached(2), noNext, true
		}
	case cmdSQLCmd, cmdZip:
		if a == "-P" {
			return spans, maskNextWhole, true
		}
		if c == cmdSQLCmd && strings.HasPrefix(a, "-P") {
			return attached(2), noNext, true
		}
	case cmd7z:
		if strings.HasPrefix(a, "-p") {
			return attached(2), noNext, true
		}
	}
	return spans, noNext, false
}

// walker follows the words of one command line: argv, or the words of a
// shell string. Its zero value starts a command line.
type walker struct {
	cmd    command
	setKey bool // after "set" or "config": the next operand may name a secret
}

// word handles one word w that is not the value of the previous flag:
// it switches command at program names, applies the command's flag rules and
// the generic secret-flag rule, and arms "set KEY VALUE" (aws configure set
// aws_secret_access_key X, npm config set //host/:_authToken X). Spans are
// offset by off; secretish is scanArg's secret result for w.
func (wk *walker) word(w string, off int, spans []span, secretish bool) ([]span, nextRule) {
	if w == "" {
		return spans, noNext
	}
	if w[0] == '-' {
		var next nextRule
		handled := false
		if wk.cmd != cmdOther {
			spans, next, handled = wk.cmd.rule(w, off, spans)
		}
		if !handled && secretish {
			next = secretFlagNext(w)
		}
		return spans, next
	}
	if c := commandOf(w); c != cmdOther {
		wk.cmd, wk.setKey = c, false
		return spans, noNext
	}
	switch {
	case w == "login" && wk.cmd == cmdRegistryCLI:
		wk.cmd = cmdRegistryLogin
	case w == "set" || w == "config":
		wk.setKey = true
	case wk.setKey:
		wk.setKey = false
		if secretish && isSecretName(keyName(w), false) {
			return spans, maskNextWhole
		}
	}
	return spans, noNext
}

// keyName is the last path element of a configuration key: the npm key
// //registry.example/:_authToken names _authToken.
func keyName(k string) string {
	if i := strings.LastIndexAny(k, "/:"); i >= 0 {
		return k[i+1:]
	}
	return k
}

// maxShellDepth bounds how deep quoted command lines are followed
// (sh -c "ssh host 'mysql -pX'" is two levels below argv).
const maxShellDepth = 3

// hasShellWords reports whether s, with what scanArg found in it, may be a
// command line worth walking: a blank followed by a command's password
// flag, or a blank and a secret keyword.
func hasShellWords(s string, secretish, commandFlag bool) bool {
	if commandFlag {
		return true
	}
	return secretish && strings.ContainsAny(s, " \t\n")
}

// isCommandFlagStart reports whether w starts like a flag that a command
// rule masks or whose value it masks (-p, -a, -w, -s, -u, -U, -P,
// --user, --proxy-user). Other flags need a secret keyword.
func isCommandFlagStart(w string) bool {
	if len(w) < 2 {
		return false
	}
	switch w[1] {
	case 'p', 'a', 'w', 's', 'u', 'U', 'P':
		return true
	case '-':
		return strings.HasPrefix(w, "--user") || strings.HasPrefix(w, "--proxy-user")
	}
	return false
}

// isShellOperator reports whether c ends a word and a simple command.
func isShellOperator(c byte) bool {
	return c == ';' || c == '&' || c == '|' || c == '(' || c == ')' || c == '`' || c == '\n'
}

// shellSpans walks the words of a shell command line s (sh -c, su -c, ssh
// host CMD) with the same rules as argv and appends spans offset by base.
// Quoting is followed closely enough to find word boundaries; a word that is
// one quoted string is masked inside its quotes, and walked again as a
// command line of its own. anySecret is scanArg's secret result for s: without it no
// word holds a keyword, and only the command rules can apply.
func shellSpans(s string, base int, spans []span, depth int, anySecret bool) []span {
	var wk walker
	next := noNext
	for i := 0; i < len(s); {
		c := s[i]
		if c == ' ' || c == '\t' || c == '\r' {
			i++
			continue
		}
		if isShellOperator(c) {
			wk, next = walker{}, noNext
			i++
			continue
		}
		ws := i
		lastQuoteStart := -1
		for i < len(s) {
			c := s[i]
			if c == ' ' || c == '\t' || c == '\r' || isShellOperator(c) {
				break
			}
			switch c {
			case '\'':
				lastQuoteStart = i
				if e := strings.IndexByte(s[i+1:], '\''); e >= 0 {
					i += e + 2
				} else {
					i = len(s)
				}
				continue
			case '"':
				lastQuoteStart = i
				i++
				for i < len(s) && s[i] != '"' {
					if s[i] == '\\' {
						i++
					}
					i++
				}
				i++
				continue
			case '\\':
				i += 2
				continue
			}
			i++
		}
		i = min(i, len(s))
		ts, te := ws, i
		quoted := lastQuoteStart == ws && te-ts >= 2 && s[te-1] == s[ts]
		if quoted {
			ts, te = ts+1, te-1
		}
		text := s[ts:te]
		if next != noNext {
			n := next
			next = noNext
			if sp, consume := n.valueSpan(text); consume {
				if sp.end > sp.start {
					spans = append(spans, span{base + ts + sp.start, base + ts + sp.end})
				}
				continue
			}
		}
		secretish, commandFlag := false, false
		if anySecret || quoted {
			secretish, commandFlag = scanArg(text, &keywordStart)
			secretish = secretish && anySecret // without a keyword in s, none in text
		}
		spans, next = wk.word(text, base+ts, spans, secretish)
		if quoted && depth < maxShellDepth && hasShellWords(text, secretish, commandFlag) {
			spans = shellSpans(text, base+ts, spans, depth+1, secretish)
		}
	}
	return spans
}
