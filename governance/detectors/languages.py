# ruff: noqa: RUF001  (phrases in other scripts)
"""Prompt-injection phrasings in French, German, Spanish, Portuguese, Italian, Dutch, Russian, Chinese, Japanese and
Arabic: ``(name, keywords, pattern)`` as in ``phrases``, with the same conventions."""

OTHER_LANGUAGES: tuple[tuple[str, str, str], ...] = (
    # French
    (
        "override_fr",
        "ignore ignorer ignores ignorez oublie oublier oublies oubliez outrepasse outrepasser outrepasses"
        " outrepassez contourne contourner contournes contournez abstraction compte suis",
        r"(?:ignore[rsz]?|oublie[rsz]?|outrepasse[rsz]?|contourne[rsz]?|fais\s+abstraction\s+d[eu']s?|faites\s+"
        r"abstraction\s+d[eu']s?|ne\s+(?:tiens|tenez)\s+(?:pas|plus)\s+compte\s+d(?:e\s+|es\s+|u\s+|')|ne\s+suis\s+plus)"
        r"\s*(?:(?:toutes?|tous)\s+)?(?:(?:les|tes|vos|ton|votre|ces|des)\s+)?(?:(?:précédentes?|anciennes?"
        r"|premières?|actuelles?)\s+)?(?:instructions?|consignes?|règles|directives|indications|restrictions|limites"
        r"|filtres|ordres)\b",
    ),
    (
        "roleplay_fr",
        "comme semblant joue",
        r"(?:fais|faites)\s+(?:comme\s+si\s+(?:tu\s+étais|vous\s+étiez)|semblant\s+d'être)|joue\s+le\s+rôle\s+d",
    ),
    (
        "roleplay_fr",
        "maintenant désormais dorénavant présent",
        r"(?:tu\s+es|vous\s+êtes)\s+(?:maintenant|désormais|dorénavant|à\s+présent)\s+(?:un|une|dan|en\s+mode|libre)\b"
        r"|(?:à\s+partir\s+de\s+maintenant|désormais|dorénavant),?\s+(?:tu\s+es|vous\s+êtes)\b",
    ),
    (
        "extract_fr",
        "prompt invite instructions consignes",
        r"(?:révèle|révélez|montre|montrez|affiche|affichez|donne|donnez|dis|dites|répète|répétez|écris|écrivez)"
        r"(?:[-\s]+(?:moi|nous))?\s+(?:(?:ton|votre|le|la)\s+(?:prompt|invite)|(?:tes|vos|les)\s+(?:instructions|consignes)"
        r"\s+(?:système|initiales|cachées|secrètes|d'origine))",
    ),
    ("extract_fr", "système", r"prompt\s+(?:du\s+|de\s+)?système|invite\s+(?:du\s+|de\s+)?système"),
    (
        "repeat_fr",
        "répète répétez recopie recopiez réécris réécrivez",
        r"(?:répète|répétez|recopie|recopiez|réécris|réécrivez)\s+(?:tout\s+ce\s+qui\s+(?:est\s+|se\s+trouve\s+)?"
        r"(?:écrit\s+)?(?:au-dessus|ci-dessus|précède|avant)|tout\s+le\s+texte\s+(?:ci-dessus|précédent|au-dessus)"
        r"|le\s+texte\s+ci-dessus)",
    ),
    ("jailbreak_fr", "mode", r"mode\s+(?:développeur|dan|sans\s+(?:restrictions?|filtres?|limites?)|jailbreak)\b"),
    (
        "unrestricted_fr",
        "sans",
        r"(?:ia|assistant|modèle|chatbot|bot|intelligence\s+artificielle)\s+(?:\w+\s+){0,2}?sans\s+(?:aucune?\s+)?"
        r"(?:restrictions?|limites?|filtres?|règles?|censure)|(?:réponds|répondez)\s+sans\s+(?:aucun[es]?\s+)?"
        r"(?:filtres?|restrictions?|limites?|censure)",
    ),
    # German
    (
        "override_de",
        "anweisungen anweisung instruktionen regeln befehle vorgaben richtlinien vorschriften einschränkungen"
        " beschränkungen systemanweisungen",
        r"(?:ignoriere|ignorier|ignorieren\s+sie|vergiss|vergessen\s+sie|missachte|missachten\s+sie|übergehe|umgehe"
        r"|überschreibe|hör\s+auf\s+mit|befolge\s+nicht\s+mehr|verwirf)\s+(?:(?:alle|sämtliche|jede)\s+)?"
        r"(?:(?:deine|die|ihre|eure|der|den|diese)\s+)?(?:(?:vorherigen|vorigen|bisherigen|obigen|früheren"
        r"|ursprünglichen|alten|gegebenen|aktuellen|vorangegangenen)\s+)?(?:anweisungen|anweisung|instruktionen"
        r"|regeln|befehle|vorgaben|richtlinien|vorschriften|einschränkungen|beschränkungen|systemanweisungen)\b",
    ),
    (
        "roleplay_de",
        "so vor bist rolle",
        r"(?:tu|tue)\s+so,?\s+als\s+(?:ob\s+du|wärst\s+du|wärest\s+du|seist\s+du)|stell\s+dir\s+vor,?\s+du\s+(?:bist|wärst)"
        r"|du\s+bist\s+(?:jetzt|nun|ab\s+sofort|ab\s+jetzt|von\s+nun\s+an)\s+(?:ein|eine|dan|im|frei)\b"
        r"|(?:ab\s+sofort|ab\s+jetzt|von\s+nun\s+an)\s+bist\s+du\b|spiele?\s+die\s+rolle\b",
    ),
    (
        "extract_de",
        "zeig zeige verrate gib nenne wiederhole sag schreib druck drucke",
        r"(?:zeig|zeige|verrate|gib|nenne|wiederhole|sag|schreib|drucke?)\s+(?:mir\s+|uns\s+)?(?:bitte\s+)?"
        r"(?:deinen|den|deine|die|dein|das)\s+(?:system-?prompt|system-?anweisungen|systemnachricht|prompt\b"
        r"|ursprünglichen\s+anweisungen|anweisungen\b(?!\s+(?:für|zu|zum|zur|bei|über)\b))",
    ),
    ("extract_de", "systemprompt system", r"system-?prompt\b"),
    (
        "repeat_de",
        "wiederhole",
        r"wiederhole\s+(?:\w+\s+)?(?:alles|den\s+(?:ganzen\s+)?text|die\s+nachrichten?)\s*,?\s*(?:was\s+|der\s+|die\s+)?"
        r"(?:oben|darüber|davor|vorher|zuvor|bisher)",
    ),
    ("jailbreak_de", "entwicklermodus dan danmodus", r"entwicklermodus\b|dan-?modus\b"),
    (
        "unrestricted_de",
        "ohne",
        r"(?:ki|ki-modell|assistent|modell|chatbot|bot|sprachmodell)\s+(?:\w+\s+){0,2}?ohne\s+(?:jegliche\s+|alle\s+)?"
        r"(?:einschränkungen|beschränkungen|regeln|filter|grenzen|zensur)|antworte\s+ohne\s+(?:jegliche\s+)?"
        r"(?:einschränkungen|filter|zensur|regeln)",
    ),
    # Spanish
    (
        "override_es",
        "instrucciones indicaciones reglas directrices órdenes normas restricciones pautas consignas",
        r"(?:ignora|ignore|ignorad|ignoren|olvida|olvide|olviden|olvidad|omite|omita|descarta|descarte|desobedece"
        r"|haz\s+caso\s+omiso\s+(?:a|de)|no\s+(?:sigas|hagas\s+caso\s+(?:a|de)))\s+(?:(?:todas|todos|cualquier)\s+)?"
        r"(?:(?:las|los|tus|sus|estas|esas)\s+)?(?:(?:anteriores|previas)\s+)?(?:instrucciones|indicaciones|reglas"
        r"|directrices|órdenes|normas|restricciones|pautas|consignas)\b",
    ),
    (
        "roleplay_es",
        "finge finja finjan fingid simula haz eres actúa compórtate",
        r"(?:finge|finja|finjan|fingid|simula|haz\s+como\s+si)\s+(?:que\s+)?(?:eres|fueras|seas|ser)\b"
        r"|(?:ahora|a\s+partir\s+de\s+ahora|desde\s+ahora),?\s+(?:tú\s+)?eres\s+(?:un|una|dan|libre|el|la)\b"
        r"|(?:actúa|compórtate)\s+como\s+(?:si\s+fueras|dan)\b",
    ),
    (
        "extract_es",
        "prompt mensaje instrucciones indicaciones",
        r"(?:revela|muestra|muéstrame|dime|enseña|enséñame|imprime|repite|escribe|dame)\s+(?:me\s+)?(?:tu|tus|el|la"
        r"|las|los)\s+(?:(?:prompt|mensaje|instrucciones|indicaciones)\s+(?:del?\s+sistema|iniciales|ocult[ao]s"
        r"|originales|secret[ao]s)|prompt\b)",
    ),
    (
        "repeat_es",
        "repite",
        r"repite\s+(?:todo|todo\s+el\s+texto|el\s+texto)\s+(?:lo\s+)?(?:anterior|de\s+arriba|que\s+está\s+arriba|previo)",
    ),
    ("jailbreak_es", "modo", r"modo\s+(?:desarrollador|dan|sin\s+(?:restricciones|filtros))\b"),
    (
        "unrestricted_es",
        "sin",
        r"(?:asistente|modelo|ia|chatbot|bot|inteligencia\s+artificial)\s+(?:\w+\s+){0,2}?sin\s+(?:ninguna\s+)?"
        r"(?:restricciones|filtros|reglas|límites|censura)|(?:responde|contesta)\s+sin\s+(?:ningún\s+|ninguna\s+)?"
        r"(?:filtros?|restricciones|censura|límites)",
    ),
    # Portuguese
    (
        "override_pt",
        "instruções instrucoes regras diretrizes orientações ordens restrições indicações",
        r"(?:ignore|ignora|ignorem|esqueça|esqueca|esquece|esqueçam|desconsidere|desconsidera|despreze|descarte"
        r"|não\s+(?:siga|sigas|obedeça))\s+(?:(?:todas|todos|quaisquer)\s+)?(?:(?:as|os)\s+)?(?:(?:suas|seus|tuas"
        r"|teus|estas)\s+)?(?:(?:anteriores|prévias)\s+)?(?:instruções|instrucoes|regras|diretrizes|orientações"
        r"|ordens|restrições|indicações)\b",
    ),
    (
        "roleplay_pt",
        "finja finge faz imagine agora",
        r"(?:finja|finge|faz\s+de\s+conta|imagine)\s+(?:que\s+)?(?:você\s+é|voce\s+e|tu\s+és|és|é|ser)\b"
        r"|(?:agora|a\s+partir\s+de\s+agora),?\s+(?:você\s+é|tu\s+és|és)\s+(?:um|uma|o|a|dan|livre)\b",
    ),
    (
        "extract_pt",
        "prompt instruções",
        r"(?:revele|revela|mostre|mostra|diga|diz|imprima|repita|exiba|dê|me\s+dê)(?:-me)?\s+(?:o\s+seu|o\s+teu|seu"
        r"|teu|o|as\s+suas|suas|tuas)\s+(?:prompt\b|instruções\s+(?:do\s+sistema|de\s+sistema|iniciais|ocultas"
        r"|originais))",
    ),
    (
        "repeat_pt",
        "repita repete",
        r"(?:repita|repete)\s+tudo\s+(?:o\s+que\s+(?:está|esta)\s+)?(?:acima|antes|anterior)",
    ),
    ("jailbreak_pt", "modo", r"modo\s+(?:desenvolvedor|programador|dan|sem\s+(?:restrições|filtros))\b"),
    (
        "unrestricted_pt",
        "sem",
        r"(?:assistente|modelo|ia|chatbot|bot|inteligência\s+artificial)\s+(?:\w+\s+){0,2}?sem\s+(?:nenhuma?\s+)?"
        r"(?:restrições|filtros|regras|limites|censura)",
    ),
    # Italian
    (
        "override_it",
        "istruzioni regole direttive indicazioni linee restrizioni ordini",
        r"(?:ignora|ignori|ignorate|dimentica|dimentichi|dimenticate|trascura|non\s+(?:seguire|considerare"
        r"|tenere\s+conto\s+d\w*))\s+(?:(?:tutte|tutti|qualsiasi)\s+)?(?:(?:le|i|gli|queste)\s+)?(?:(?:tue|tuoi)\s+)?"
        r"(?:(?:precedenti)\s+)?(?:istruzioni|regole|direttive|indicazioni|linee\s+guida|restrizioni|ordini)\b",
    ),
    (
        "roleplay_it",
        "finta fingi comportati sei",
        r"(?:fai|fate|faccia)\s+finta\s+di\s+essere|fingi\s+di\s+essere|comportati\s+come\s+(?:se|dan)\b"
        r"|(?:ora|adesso|da\s+ora\s+in\s+poi|d'ora\s+in\s+poi|d'ora\s+in\s+avanti),?\s+sei\s+(?:un|una|dan|in|libero)\b",
    ),
    (
        "extract_it",
        "prompt istruzioni",
        r"(?:rivela|rivelami|mostra|mostrami|dimmi|stampa|ripeti|scrivi|dammi)\s+(?:il\s+tuo|il|tuo|le\s+tue|tue)\s+"
        r"(?:prompt\b|istruzioni\s+(?:di\s+sistema|del\s+sistema|iniziali|nascoste|originali))",
    ),
    ("extract_it", "prompt", r"prompt\s+di\s+sistema\b"),
    (
        "repeat_it",
        "ripeti",
        r"ripeti\s+tutto\s+(?:il\s+testo\s+|quello\s+|quanto\s+)?(?:che\s+(?:c'è|è)\s+)?(?:scritto\s+)?(?:sopra|precedente)",
    ),
    ("jailbreak_it", "modalità", r"modalità\s+(?:sviluppatore|dan|senza\s+(?:restrizioni|filtri))\b"),
    (
        "unrestricted_it",
        "senza",
        r"(?:ia|assistente|modello|chatbot|bot|intelligenza\s+artificiale)\s+(?:\w+\s+){0,2}?senza\s+(?:alcun[ao]?\s+)?"
        r"(?:regole|limiti|filtri|restrizioni|censura)|rispondi\s+senza\s+(?:alcun\s+)?(?:filtri|restrizioni|limiti|censura)",
    ),
    # Dutch
    (
        "override_nl",
        "instructies regels opdrachten richtlijnen aanwijzingen beperkingen instructie",
        r"(?:negeer|vergeet|omzeil|veronachtzaam|overschrijf)\s+(?:(?:al|alle)\s+)?(?:(?:je|jouw|de|uw|die|deze)\s+)?"
        r"(?:(?:vorige|eerdere|voorgaande|bovenstaande|oude|oorspronkelijke|huidige)\s+)?(?:instructies|regels"
        r"|opdrachten|richtlijnen|aanwijzingen|beperkingen|instructie)\b",
    ),
    (
        "roleplay_nl",
        "alsof bent ben rol",
        r"doe\s+alsof\s+(?:je|jij|u)\b|(?:je|jij)\s+bent\s+nu\s+(?:een|dan|in|vrij)\b|vanaf\s+nu\s+ben\s+(?:je|jij)\b"
        r"|speel\s+de\s+rol\b",
    ),
    (
        "extract_nl",
        "systeemprompt systeem prompt systeeminstructies instructies",
        r"(?:toon|laat|geef|vertel|herhaal|print)\s+(?:me\s+|mij\s+)?(?:je|jouw|de|uw)\s+(?:systeemprompt|systeem-prompt"
        r"|systeeminstructies|prompt\b|oorspronkelijke\s+instructies)",
    ),
    ("extract_nl", "systeemprompt", r"systeemprompt\b"),
    ("repeat_nl", "herhaal", r"herhaal\s+alles\s+(?:wat\s+)?(?:hierboven|erboven|hiervoor|eerder)"),
    ("jailbreak_nl", "ontwikkelaarsmodus", r"ontwikkelaarsmodus\b"),
    (
        "unrestricted_nl",
        "zonder",
        r"(?:ai|assistent|model|chatbot|bot)\s+(?:\w+\s+){0,2}?zonder\s+(?:enige\s+)?(?:regels|beperkingen|filters"
        r"|grenzen|censuur)",
    ),
    # Russian
    (
        "override_ru",
        "инструкции указания правила команды ограничения установки директивы",
        r"(?:игнорируй|игнорируйте|проигнорируй|проигнорируйте|забудь|забудьте|не\s+обращай\s+внимания\s+на|не\s+слушай"
        r"|отбрось|отмени|пренебреги)\s+(?:(?:все|всё|любые)\s+)?(?:(?:свои|твои|ваши|эти|данные)\s+)?"
        r"(?:(?:предыдущие|прошлые|прежние|старые|изначальные|вышеуказанные|системные)\s+)?(?:инструкции|указания"
        r"|правила|команды|ограничения|установки|директивы)",
    ),
    (
        "roleplay_ru",
        "притворись представь веди ты",
        r"притворись|представь,?\s+что\s+ты|веди\s+себя\s+как|(?:теперь|отныне|с\s+этого\s+момента)\s+ты\s+"
        r"(?:dan|дан|не\b|без\b|являешься|ии\b|бот\b|модель\b|ассистент\b|свободн)",
    ),
    (
        "extract_ru",
        "промпт запрос prompt инструкции указания",
        r"(?:покажи|раскрой|выведи|напиши|повтори|скажи|назови|дай)\s+(?:мне\s+)?(?:(?:свой|твой|свои|твои|весь|полный)\s+)?"
        r"(?:системный\s+(?:промпт|запрос|prompt)|системные\s+(?:инструкции|указания)|исходные\s+инструкции|промпт)",
    ),
    ("extract_ru", "промпт", r"системный\s+промпт"),
    (
        "repeat_ru",
        "повтори",
        r"повтори\s+(?:всё|все|весь\s+текст)\s*,?\s*(?:что\s+)?(?:было\s+|написано\s+)?(?:выше|до\s+этого)",
    ),
    ("jailbreak_ru", "режим", r"режим\s+разработчика|режим\s+dan"),
    (
        "unrestricted_ru",
        "без",
        r"(?:ии|ассистент|модель|бот|чат-бот|искусственный\s+интеллект)\s+(?:\w+\s+){0,2}?без\s+(?:каких-либо\s+)?"
        r"(?:ограничений|правил|фильтров|цензуры)|отвечай\s+без\s+(?:ограничений|фильтров|цензуры)",
    ),
    # Chinese (simplified and traditional): no spaces between words.
    (
        "override_zh",
        "忽略 忽视 忽視 无视 無視 忘记 忘掉 忘記 不要 放弃 放棄 跳过 跳過 绕过 繞過",
        r"(?:忽略|忽视|忽視|无视|無視|忘记|忘掉|忘記|不要理会|不要理會|不要遵守|不要遵循|放弃|放棄|跳过|跳過|绕过|繞過)"
        r"掉?(?:你|您)?(?:之前|以前|先前|前面|上面|以上|上述|此前|所有|全部|一切)?的?(?:所有|全部|一切)?的?"
        r"(?:指令|指示|说明|說明|规则|規則|提示|命令|要求|设定|設定|限制)",
    ),
    (
        "roleplay_zh",
        "假装 假裝 你现在是 你現在是 开始你是 開始你是",
        r"假装(?:你是|自己是|成)|假裝(?:你是|自己是|成)|(?:你现在是|你現在是|从现在开始你是|從現在開始你是)"
        r"(?:一个|一個|一名|dan|没有|沒有|不受|ai|人工智能|机器人|機器人|助手|黑客|邪恶|邪惡)",
    ),
    (
        "extract_zh",
        "提示 指令 消息",
        r"(?:显示|顯示|输出|輸出|告诉我|告訴我|泄露|洩露|打印|重复|重複|给我看|說出|说出)(?:一下)?(?:你的)?"
        r"(?:系统提示|系統提示|系统指令|系統指令|初始指令|系统消息|系統消息|提示词|提示詞)|系统提示词|系統提示詞",
    ),
    ("repeat_zh", "重复 重複", r"(?:重复|重複)(?:以上|上面|之前)的?(?:所有)?(?:内容|內容|文字|文本)"),
    ("jailbreak_zh", "开发者模式 開發者模式 限制", r"开发者模式|開發者模式|没有任何限制|沒有任何限制|不受任何限制"),
    # Japanese
    (
        "override_ja",
        "無視 忘れ",
        r"(?:これまで|以前|前|上記|先|今まで)の(?:すべての|全ての)?(?:指示|命令|ルール|設定|指令)(?:を|は)?"
        r"(?:すべて|全て)?(?:無視|忘れ)|指示を(?:すべて|全て)?無視",
    ),
    ("extract_ja", "システムプロンプト", r"システムプロンプト"),
    ("roleplay_ja", "あなたは今から 今からあなたは ふりをして", r"あなたは今から|今からあなたは|のふりをして"),
    ("jailbreak_ja", "開発者モード 制限", r"開発者モード|制限(?:なし|無し)で(?:答え|回答|応答)"),
    # Arabic
    ("override_ar", "تجاهل", r"تجاهل\s+(?:جميع\s+|كل\s+)?(?:التعليمات|الأوامر|القواعد|الإرشادات)"),
    ("extract_ar", "النظام", r"موجه\s+النظام|تعليمات\s+النظام"),
)
