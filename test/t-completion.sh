# SPDX-License-Identifier: MIT
# Shell completion, made from qga's own table: loaded into a real bash
# and asked as the shell asks it, and into a real zsh when there is one.
need_tool bash bash
K=$T/completion
mkdir -p "$K"
nl='
'
$QGA completion bash >"$K/qga.bash"
# comp WORD...: what bash offers for the last WORD of "qga WORD...".
comp() {
	bash -c '. "$1"; shift; COMP_WORDS=(qga "$@"); COMP_CWORD=$#; _qga
		printf "%s\n" "${COMPREPLY[@]}"' comp "$K/qga.bash" "$@" | sort
}
check "completion: bash registers it" 0 'complete -o default -F _qga qga' '' \
	bash -c ". '$K/qga.bash'; complete -p qga"
check "completion: qga fs" 0 "fsfreeze${nl}fstrim" '' comp fs
check "completion: guest names from the schema" 0 "guest-file-read" '' comp guest-file-r
check "completion: exec's options, its own and the global ones" 0 \
	"--env$nl--help$nl--input$nl--json$nl--max-reply$nl--max-size$nl--merge$nl--no-stream$nl--no-sync$nl--no-tag$nl--no-wait$nl--parallel$nl--pretty$nl--ps$nl--qmp$nl--quiet$nl--return$nl--socket$nl--stream$nl--targets$nl--timeout$nl--version" '' \
	comp exec --
check "completion: after the global options too" 0 "--no-wait" '' comp -s x -t 1 exec --no-w
check "completion: address prefixes after -s" 0 "hvsock:${nl}pve:${nl}serial:${nl}tcp:${nl}unix:${nl}vsock:" '' \
	sh -c "cd '$K' && bash -c '. ./qga.bash; COMP_WORDS=(qga -s \"\"); COMP_CWORD=2; _qga
		printf \"%s\\n\" \"\${COMPREPLY[@]}\"' | grep : | sort"
check "completion: serve's options" 0 "--listen" '' comp serve --li
check "completion: a bad shell" 2 '' 'usage: qga \[OPTIONS\] completion bash | zsh' $QGA completion fish
if command -v zsh >/dev/null 2>&1; then
	$QGA completion zsh >"$K/_qga"
	check "completion: zsh reads it" 0 '' '' zsh -n "$K/_qga"
	check "completion: zsh registers it" 0 '_qga' '' \
		zsh -fc "autoload -U compinit && compinit -u -d '$K/zcompdump' && . '$K/_qga' && print \$_comps[qga]"
else
	skip "zsh completion: no zsh here (apt-get install zsh)"
fi
