"""The kind of change an instruction asks for: a small, documented rule-based classifier.

    python -c "from prompt_recovery.scoring.categories import categorize; print(categorize('Summarise this in one line.'))"

`categorize(instruction)` returns one of `CATEGORIES`. It gives "category accuracy" a
precise meaning in `evaluate`: a predicted instruction is right when it asks for the same
*kind* of change as the true one, even if the wording differs.

Categories (checked in this order; the first rule that matches wins):

  1. ``translate_simplify`` – translate into a named language ("Translate this into French"),
     or make the text simpler/plainer ("Simplify the language", "explain it to a five-year-old",
     "in everyday language", "dumb it down", "so my grandma could understand it", "in easy words", "basic English").
  2. ``summarise``  – shorten: summarise, condense, shorten, "more concise", "in one sentence", TL;DR,
     "sum it up", "boil it down", "trim it down", takeaways, "the one-line / short version", "the essentials".
  3. ``expand``     – lengthen: expand, elaborate, "add more detail", "make it longer", "flesh it out",
     "a full-length article".
  4. ``change_tone`` – the word "tone"/"mood", "<tone adjective> language/voice/manner/edge"
     ("formal language", "in a friendly voice"), "more/less <tone adjective>" ("more formal"), a mood the text
     should have ("make it sound calm", "so it feels whimsical", "make this story absurdly funny", "sounds
     heartfelt") or two tone words joined ("bitter and resentful"; not after an article: "a creepy, ominous
     warning" is a form).
  5. ``change_style`` (voice) – a viewpoint or a persona speaking: "from the dog's point of view",
     "narrated by", "in the first person", "as if a pirate captain were reporting it", "a pirate's
     warning", "like a sports commentator". Before formats: the form is then the vehicle of the voice.
  6. ``change_format`` – a structural or document type: list, bullet points, table, email,
     letter, memo, tweet, headline, FAQ, dialogue, debate, script, news article, report, recipe, ad...
     A format word after a demonstrative, possibly with modifiers ("this email", "my lost-cat poster",
     "the article") names the input and does not count: "Rewrite this email in the voice of a pirate"
     is a style change; nor does a format word inside a hyphenated word ("post-apocalyptic").
  7. ``change_style`` – a literary genre or persona: poem, haiku, song, story, fairy tale, legend,
     "in the style of", "as if written by", "as a pirate", "imagine this as", "as if it were"...
  8. ``change_tone`` (again) – a bare tone adjective: "make it more formal / humorous / polite / creepy".
  9. ``change_style`` (again) – "the way a 1920s mobster would", "in Gen Z speak", slang.
 10. ``translate_simplify`` (again) – a young reader and nothing else: "Explain this to a 7 year old",
     "like I'm five" ("a fairy tale for a five-year-old" is a story, "summarise it for a 10-year-old" a summary).
 11. ``improve``    – edit for quality without changing kind: improve, polish, proofread,
     fix grammar, clearer, more engaging, rephrase, paraphrase, tighten.
 12. ``other``      – anything else (including an empty instruction).

Matching is case-insensitive on whole words. The order encodes precedence: "Summarise it as
a poem" is a summary; "Rewrite it as a formal email" is a format change, because the
document type is more specific than a bare tone adjective, but "Make the email more
formal" is a tone change.

The rules were last widened in session 11 against the 925 hand-written training triples whose family
label names one category (`data/handwritten`, labelled by their writers): agreement 0.769 -> 0.906; on the
160 round-4 rows written afterwards, 0.637 -> 0.850 before any rule looked at them (0.900 on all 1,085 such
rows now, tests/test_metrics.py); every instruction of both family suites keeps its family's category
(tests/test_suite.py). Session 14 widened them twice. First against round 5's 240 rows (moods named by how the text
should sound or feel, puns, "easy words" / "basic English"): round 5 0.82 -> 0.93. Round 6 (160 rows written after
that) then read 0.700 / 0.762 (its halves a / b) before and 0.725 / 0.800 after: the unseen gain of such a pass is
small. Then against round 6 a only (abridge, pare / whittle / cut down, a brief version, stretch / pad out, develop
further, a listener named for the register: "like you're telling a friend", "raise the register", "less stuffy"):
round 6 b, not looked at, 0.800 -> 0.838; then against round 6 b too (comic spin, makes readers laugh, "so he'd get
it", "knows nothing about", primary-school kids): 0.97 on both halves, 0.917 on all 1,474 labelled rows. 1 of the 576
held-out truths changes category (a quoted "serene" turns an "enhance the description" instruction into a tone
change), no suite instruction does, and no stored prediction of the shipped model does. Session 15 widened them on the
drafts of suite D (84 rows, as written, before its writers reworded what the rules misread: 0.881 -> 0.976) and
round 7 b (0.725 -> 0.875): "boil this coffee grinder review down", "shrink", "the main point", "Two lines, no more",
"three times as long", "beef up", "grow ... into", "at greater length", "someone like me would understand", "I've
never studied", "Have Yoda say this", "from its side", "a phone call between", "a play scene", "Name this story".
Round 7 a, written at the same time and not looked at, then read 0.750 -> 0.775; a last pass on it ("300 to 400
words" is a length, not "to 400 words"; "super simple", "easy enough", "who's never been", "bulletise", "stretch
... into", "add to this") brings it to 0.925 and all 1,634 labelled rows to 0.919 (0.899 before the session). No
held-out, dev or suite truth, no stored prediction or reranked answer of the shipped model, and no row of the length
prior's source mix changes category.
"""

from __future__ import annotations

import re

CATEGORIES = (
    "summarise",
    "expand",
    "change_tone",
    "change_style",
    "change_format",
    "translate_simplify",
    "improve",
    "other",
)


def _words(*words: str) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.I)


LANGUAGES = (
    "english|french|spanish|german|italian|portuguese|dutch|russian|chinese|mandarin|cantonese|japanese|"
    "korean|arabic|hindi|bengali|urdu|turkish|greek|latin|hebrew|swedish|norwegian|danish|finnish|polish|"
    "czech|hungarian|romanian|ukrainian|vietnamese|thai|indonesian|malay|swahili|persian|farsi|tagalog|"
    "esperanto|klingon|elvish|sanskrit|pig latin|emoji|emojis|morse code|braille|binary|sign language"
)

_TRANSLATE = re.compile(r"\btranslat\w*\b[^.?!]*\b(?:" + LANGUAGES + r")\b|\b(?:in|into)\s+(?:" + LANGUAGES
                        + r")\b(?!\s+(?:style|poem|song|story))", re.I)
_DIALECT = re.compile(r"\bshakespear\w*|\b(?:old|middle|victorian|pirate|elizabethan) english\b", re.I)
_SIMPLIFY = re.compile(r"\bsimplif\w*|\bsimpler\b|\bsimple (?:terms|words|language|english)\b|\bplain "
                       r"(?:english|language|terms|words)\b|\beli5\b|\bexplain\w* [^.?!]*\b(?:child|kid|"
                       r"five[- ]year[- ]old|5[- ]year[- ]old|beginner|layman|laypeople|non[- ]expert)s?\b|"
                       r"\b(?:child|kid|five[- ]year[- ]old|layman|beginner)s?\b[^.?!]*\bunderstand|\beasier to (?:understand|"
                       r"read|follow)\b|\bunderstandable\b|\bnon[- ]experts?\b|\bgeneral audience\b|\blayperson\b"
                       r"|\beveryday (?:language|words|english|terms)\b"
                       r"|\bnon-?technical\b|\bjargon\b|\bdumb\w* (?:(?:it|this|that|them) )?down\b|\bless complicated\b"
                       r"|\beasy to (?:understand|read|follow)\b|\bfor (?:complete |total |absolute )?beginners\b"
                       r"|\bbeginner-friendly\b|\breading level\b|\bplain[- ]language\b"
                       r"|\b(?:can|could|would|will) (?:easily )?(?:understand|follow|get) (?:(?:it|this)\b|(?:them|these) easily\b)"
                       # "in easy words", "basic English", "easy for my son to read", "in words she'd get"
                       r"|\b(?:easy|easier|basic|simple|simpler) (?:words|english|vocabulary)\b"
                       # "so he'd get it", "easier for him to read", "someone who knows nothing about football"
                       r"|\b\w+['’]d (?:easily )?(?:get|understand|follow) (?:it|this)\b|\beasier for [\w'’ -]{1,25} to "
                       r"(?:understand|read|follow)\b|\bknows? (?:nothing|little) about\b|\bunderstand every word\b"
                       r"|\beasy (?:for [\w'’ -]{1,30} )?to (?:understand|read|follow)\b"
                       r"|\bin words (?:a |an |the )?[\w'’ -]{1,25} (?:get|understand|follow)s?\b"
                       # session 15 (suite D drafts): "in a way someone like me would understand", "I've never
                       # studied economics"
                       r"|\bin a way [^.?!]{0,40}\bunderstand\b|\b(?:i'?ve|i have|who'?s|who has|who have|has|have) never "
                       r"(?:studied|done|taken|learned|learnt)\b"
                       # round 7 a: "someone who's never been hiking", "has no idea what merino is", "easy enough to
                       # read to her", "they'd actually understand", "Write it more simply", "super simple"
                       r"|\b(?:someone|somebody|anyone|people|a person|readers?) who(?:'?s| has| have| had) never\b"
                       r"|\bno idea what\b|\beasy enough\b|\b\w+['’]d (?:actually |easily |really )?(?:get|understand|follow)\b"
                       r"|\b(?:more|super|really|very|nice and|extra) (?:simple|simply)\b(?! (?:to|as)\b)",
                       re.I)
# a young reader named with no other change asked for ("Explain this to a 7 year old"): checked late, so "a fairy
# tale for a five-year-old" stays a story and "Summarize this for a 10-year-old" a summary
_CHILD = re.compile(r"\b(?:\d+|five|six|seven|eight|nine|ten|eleven|twelve)[- ]?years?[- ]?olds?\b|\b(?:first|second|third|"
                    r"1st|2nd|3rd)[- ]graders?\b|\b(?:year|grade) [1-6] (?:class|pupils|students|kids|children)\b|\b(?:primary|elementary)[- ]school\b|\bschool ?kids\b|\blittle ones\b|\b(?:preschoolers?|kindergart[ne]+rs?|toddlers?)\b|\blike i'?m (?:a )?"
                    r"(?:\d+|five|six|seven|eight|nine|ten|little|kid|child)\b", re.I)
_SUMMARISE = re.compile(r"\bsummar\w*|\bcondens\w*|\bshorten\w*|\bshorter\b(?! sentences)|\bconcise\w*"
                        r"|\bbriefer\b|\bbriefly\b|\bin brief\b|\btl;?dr\b"
                        r"|\b(?<!\d )(?:in|into|to) (?:one|a single|two|three|\d+|a couple of) (?:short )?(?:sentences?|lines?|words?)\b"
                        r"|\bkey points\b|\bmain (?:points|ideas)\b|\bgist\b|\bcut (?:it )?down\b"
                        r"|\babstract\b|\bsynopsis\b|\brecap\b|\boverview\b"
                        r"|\bsum(?:s|med|ming)? (?:(?:it|this|that|these|them|everything) )?up\b|\bboil\w* (?:[\w'’-]+ ){0,3}down\b"
                        r"|\btrim\w* (?:[\w'’-]+ ){0,3}down\b|\bcut\w* (?:[\w'’-]+ ){0,4}down to\b|\btakeaways?\b"
                        r"|\bone[- ]line(?:r|d)?\b|\bshort(?:er)? version\b|\bthe essentials\b|\bkeep it (?:brief|short)\b"
                        r"|\bin (?:under|about|fewer than|less than|at most) \d+ words\b|\bin a few (?:sentences|lines|words)\b"
                        r"|\bnutshell\b|\bdistil\w*"
                        # session 14 (round 6): "Abridge this.", "Pare this down.", "cut this right down", "a brief
                        # version", "keep it to a few sentences"
                        r"|\babridg\w*|\b(?:pare|pares|pared|paring|whittl\w*|cut|cuts|cutting) (?:[\w'’-]+ ){0,3}(?:down|back)\b"
                        r"|\bbrief (?:version|summary|rundown|account)\b"
                        r"|\b(?:to|into) (?:just )?a few (?:short )?(?:sentences|lines|words)\b"
                        # session 15 (round 7 b, suite D drafts): "boil this coffee grinder review down", "Shrink this
                        # toast", "the main point", "a sentence or two", "Two lines, no more", "40 words or less"
                        r"|\bboil\w* (?:[\w'’-]+ ){4,5}down\b|\bshrink\w*|\bmain point\b|\b(?:just|in|to|into) a (?:sentence|line) or two\b"
                        r"|\b(?:one|two|three|\d+) (?:sentences|lines),? (?:no more|max|maximum|tops)\b"
                        r"|\b\d+ words or (?:less|fewer)\b", re.I)
_EXPAND = re.compile(r"\bexpand\w*|\belaborat\w*|\blengthen\w*|\blonger\b|\bmore (?:detail|details|detailed|"
                     r"depth|examples?|information|context|description)\b|\badd\w* (?:[\w-]+ ){0,2}(?:detail|details|"
                     r"examples?|depth|context|description)\b|\b(?:flesh|build)\w* (?:[\w'’-]+ ){0,3}out\b|\bextend\w*"
                     r"|\bin (?:more|greater) detail\b|\bfull(?:er|-length)? (?:paragraphs?|essay|article|feature|version|"
                     r"piece|account|write-?up)\b"
                     # "Stretch this out", "Pad out this request", "Develop this with more detail", "more substance"
                     r"|\b(?:stretch|pad)\w* (?:[\w'’-]+ ){0,3}out\b|\bdevelop\w* [^.?!]{0,40}\b(?:more|further|detail)"
                     r"|\bbuild\w* (?:it|this|that|the [\w-]+) up\b|\bmore substance\b"
                     # session 15 (round 7 b, suite D drafts): "three times as long", "Beef up this job ad", "at
                     # greater length", "a full-length blog review", "Grow this news brief into", "a fuller
                     # troubleshooting explanation"
                     r"|\b(?:twice|two|three|four|five|\d+) times (?:as long|longer|the length)\b|\bdouble (?:the|its) length\b"
                     r"|\bbeef\w* (?:[\w'’-]+ ){0,3}up\b|\bat (?:greater|more|full|some) length\b|\bfull-length\b"
                     r"|\bgrow\w* (?:[\w'’-]+ ){1,4}into\b|\bfuller (?:[\w-]+ ){0,2}(?:explanation|description|"
                     r"treatment|picture|story|piece)\b"
                     # round 7 a: "stretch this into a script", "add to this diary entry", "a full blog post"
                     r"|\bstretch\w* (?:[\w'’-]+ ){0,3}into\b|\badd to (?:this|the|it|my)\b|\bfull (?:[\w-]+ )?post\b", re.I)
_TONE_WORD = _words("tone", "tones", "mood", "tonality")
TONE_ADJECTIVES = (
    "formal|informal|casual|professional|polite|rude|friendly|unfriendly|warm|cold|humorous|funny|comedic|"
    "witty|playful|sarcastic|ironic|serious|somber|sombre|solemn|cheerful|happy|sad|melancholic|melancholy|"
    "angry|aggressive|gentle|kind|optimistic|pessimistic|positive|negative|enthusiastic|excited|exciting|"
    "persuasive|assertive|confident|empathetic|compassionate|sympathetic|respectful|diplomatic|neutral|"
    "objective|emotional|dramatic|passionate|urgent|calm|soothing|reassuring|encouraging|inspiring|"
    "inspirational|motivational|uplifting|lighthearted|light-hearted|upbeat|dark|darker|ominous|mysterious|"
    "romantic|nostalgic|whimsical|sincere|apologetic|authoritative|conversational|colloquial|academic|"
    "scholarly|technical|businesslike|snarky|cynical|sassy|grumpy|excited|joyful|hopeful|fearful|scary|"
    "spooky|suspenseful|respectful|courteous|blunt|direct|tactful|humble|arrogant|enthusiastically|"
    "formally|informally|casually|politely|humorously|sarcastically|lighter|friendlier|warmer|kinder|"
    "furious|sorry|convincing|professionally|creepy|unsettling|nervous|anxious|deadpan|theatrical|victorious|"
    "triumphant|bossy|fun|chill|stiff|relaxed|chatty|laid-back|easygoing|easy-going|bored|unenthusiastic|dreamy|"
    "corporate|passive-aggressive|gloomy|grim|cheery|bubbly|sarcasm|humor|humour|enthusiasm|irony|official|"
    "official-sounding|angrier|sadder|happier|funnier|melodramatic|hilarious|cheesy|over-the-top|jokes|jokey|"
    "silly|goofy|smug|bitter|resentful|unbothered|serene|secretive|conspiratorial|awestruck|"
    "swoony|breathless|dignified|tender|wistful|gushing|giddy|indignant|outraged|mournful|amusing|grateful|impatient|"
    "calmer|"
    "puns|pun|punny|wordplay"
)
# tone words that usually modify a form ("a heartfelt apology", "a hype video") and count only in the phrases below
_PHRASE_TONE = TONE_ADJECTIVES + "|heartfelt|hype|hyped|pumped|comic|proud"
_DEGREE = r"(?:(?:a bit|a little|really|very|totally|super|so|absurdly|genuinely|properly|extra|much|way|more|less|" \
          r"fully|truly|utterly|completely|slightly|somewhat|more and more)\s+)?"
_TONE_PHRASE = re.compile(r"\b(?:" + _PHRASE_TONE + r")\b\s+(?:language|voice|manner|register|way|wording|"
                          r"words|attitude|feel|vibe|style|edge|spin|twist|touch|angle|english|prose|phrasing)\b|\bmak\w* (?:[\w'’-]+ ){0,2}"
                          r"(?:laugh|giggle|chuckle)\b|\b(?:more|less|very|extra)\s+(?:" + _PHRASE_TONE + r")\b"
                          # "sound calm and unbothered", "so it feels whimsical", "make this paragraph absurdly funny"
                          # (up to four words between "make" and the adjective, none an article: "make it a formal
                          # email" names a form)
                          r"|\b(?:sound|sounds|sounding|feel|feels|seem|seems|come across as|comes across as)\s+" + _DEGREE
                          + r"(?:" + _PHRASE_TONE + r")\b"
                          r"|\b(?:make|makes|making)\s+(?:(?!(?:a|an|into|as|like|sound|feel|seem)\b)[\w'’-]+\s+){1,4}" + _DEGREE
                          + r"(?:" + _PHRASE_TONE + r")\b"
                          # two tone words joined: "whimsical and playful", "a formal, dignified register"
                          # (not after an article: "as a creepy, ominous warning" names a form)
                          r"|(?<!\ba )(?<!\ban )(?<!\bthe )\b(?:" + _PHRASE_TONE + r"),?\s+(?:and\s+)?(?:" + _PHRASE_TONE
                          + r")\b",
                          re.I)
# the register named by a listener or a setting: "like you're telling it to a friend over a drink", "as if
# explaining it to a friend", "raise the register", "a proper boardroom voice", "less stuffy"
_REGISTER = re.compile(r"\b(?:like|as if|as though) (?:you'?re|you are|i'?m|i am|someone(?: is)?|they'?re)? ?\w+ing\b"
                       r"[^.?!]{0,30}\b(?:to|with|for) (?:a|my|your|their|his|her|some|an old) (?:\w+ )?(?:friends?|mates?|"
                       r"pals?|buddy|buddies)\b|\b(?:raise|raising|lift|elevate|lower) (?:the|its) register\b"
                       r"|\bboardroom (?:voice|tone|register|language|style|manner)\b|\bless (?:stuffy|stiff|corporate|robotic)\b|\bchattiness\b|\blike me talking\b",
                       re.I)
_TONE_ADJ = re.compile(r"\b(?:" + TONE_ADJECTIVES + r")\b", re.I)
FORMATS = (
    "list|lists|listicle|bullet|bullets|bulleted|bullet-point|bullet-points|numbered|checklist|table|"
    "spreadsheet|chart|outline|email|e-mail|emails|letter|letters|memo|memorandum|note|notes|postcard|"
    "tweet|tweets|twitter|x post|social media|facebook|instagram|linkedin|reddit|post(?!-)|blog|headline|"
    "headlines|title|slogan|tagline|advertisement|ad|advert|commercial|brochure|flyer|pamphlet|poster|"
    "billboard|faq|q&a|questionnaire|quiz|survey|interview|dialogue|dialog|conversation|script|screenplay|"
    "transcript|news|article|press release|report|briefing|dossier|bulletin|newsletter|recipe|menu|"
    "manual|guide|instructions|step-by-step|steps|tutorial|how-to|resume|résumé|cv|cover letter|invitation|"
    "announcement|notice|warning|label|diary|journal|log|logbook|text message|sms|voicemail|"
    "telegram|obituary|eulogy|speech|toast|sermon|lecture|presentation|slide|slides|pitch|proposal|"
    "contract|agreement|treaty|policy|manifesto|petition|ticket|receipt|invoice|certificate|"
    "crossword|riddle|puzzle|horoscope|forecast|weather report|sports commentary|commentary|broadcast|"
    "podcast|press conference|dispatch|dispatches|quote|quotes|guidelines|rules|job posting|job description|product description|product listing|"
    "listing|catalog|catalogue|encyclopedia|dictionary|glossary|definition|json|markdown|html|code|timeline|itinerary|agenda|minutes|schedule|"
    "caption|infomercial|trailer|voiceover|dating profile|marketing copy|greeting card|debate|titles|"
    "frequently asked questions|subject line|chat|sketch|skit|interviewing|interviews|whatsapp|"
    "play scene|stage directions|phone call|back-and-forth|bulleti[sz]e|bulleti[sz]ed|"
    "(?:should|would|could) (?:i|we|you) call|be called"
)
_FORMAT = re.compile(r"\b(?:" + FORMATS + r")\b", re.I)
# "this email", "my lost-cat poster", "the article": a format word after a demonstrative (up to three modifiers
# between) names the INPUT, not the form asked for; "the" counts unless it follows "into"/"as"/"to"/"through"
_NOT_MODIFIER = r"(?:into|as|a|an|the|to|in|for|from|with|like|of|and|so|up|down|out|more|less|it|this|that)\b"
_INPUT_FORMAT = re.compile(r"(?:\b(?:this|that|these|those|following|above)|(?<!\bto )(?<!\bon )(?<!\bfor )"
                           r"\b(?:my|your|our|his|her|their)|(?<!\binto )(?<!\bas )"
                           r"(?<!\bto )(?<!\bthrough )\bthe)\s+(?:(?!" + _NOT_MODIFIER + r")[\w'’-]+\s+){0,3}(?:" + FORMATS + r")\b",
                           re.I)
# a voice or viewpoint: named before formats, so "a pirate's warning" and "a diary entry from the bear's point of
# view" are style changes (the form is the vehicle of the voice)
PERSONAS = (
    "pirate|pirates|cowboy|robot|alien|wizard|superhero|villain|knight|detective|announcer|commentator|sportscaster|"
    "butler|mobster|gangster|sergeant|grandpa|grandma|granny|yoda|shakespeare|valley girl|surfer|caveman|vampire|"
    "herald|auctioneer|game[- ]show host"
)
_VOICE = re.compile(r"\bpoint of view\b|\bperspective\b|\bviewpoint\b|\bpov\b|(?:'s|’s) side\b|\bthe one "
                    r"(?:telling|narrating|saying)\b|\bwhat would (?:a|an|the)\b[^?.!]{1,40}\bsay\b|\b(?:first|second|third)[- ]person\b"
                    r"|\bnarrat(?:e|es|ed|ing|or|ors)\b|\bthrough the eyes of\b|\bin (?:his|her|its|their) own words\b"
                    # session 15 (suite D drafts, round 7 b): "Have Yoda say this.", "Have the fiddle-leaf fig write the
                    # post instead", "Write it from its side", "How would the vacuum itself see all this?"
                    r"|\b(?:have|let) (?!(?:it|this|that|me|us|them|you)\b)(?:[\w'’-]+ ){1,4}(?:say|tell|talk|write|narrate|"
                    r"deliver|explain|announce)\b(?! (?:more|less)\b)|\bfrom (?:its|his|her|their) (?:own )?side\b"
                    r"|\bhow (?:would|does|did|might) (?:a |an |the |my )?[\w'’ -]{1,30} see\b"
                    r"|\bas (?:if|though) (?:a|an|the|some|my|his|her|our)\b[^.?!]*\b(?:were|was|is|are)\s+\w+ing\b"
                    r"|\b(?:a|an|the)\s+(?:[\w-]+\s+){0,2}(?:" + PERSONAS + r")(?:'s|’s)\s|\b(?:as|like|have|let|could|can|would) (?:a|an|the|some)\s+(?:[\w-]+\s+){0,2}(?:"
                    + PERSONAS + r")\b(?!-)", re.I)
# "the way a 1920s mobster would say it", "in Gen Z speak": a voice unless a tone word says more ("casually, the
# way a student would say it"), so checked after the bare tone adjectives
_VOICE_LATE = re.compile(r"\b(?:the way|like|as|how) (?:a |an |the )?[\w .'’-]{1,30} would\b|"
                         r"\b(?:in|into) [\w ]{1,20} speak\b|\bslang\b", re.I)
GENRES = (
    "poem|poems|poetry|poetic|verse|sonnet|haiku|haikus|limerick|ode|ballad|epic|rhyme|rhyming|rhymes|song|songs|lyrics|"
    "rap|hymn|chant|anthem|jingle|lullaby|opera|musical|story|stories|tale|tales|fairy|fable|parable|myth|"
    "myths|mythical|legend|legends|saga|prophecy|fantasy|sci-fi|science fiction|thriller|mystery|noir|"
    "detective|horror|romance|comedy|tragedy|drama|play|novel|novella|narrative|monologue|soliloquy|"
    "shakespeare|shakespearean|pirate|pirates|cowboy|robot|alien|wizard|superhero|villain|knight|"
    "medieval|victorian|steampunk|cyberpunk|dystopian|utopian|gothic|satire|satirical|parody|spoof|"
    "style|styled|genre|persona|character|voice|"
    "written by|spoken by|told by|as if|as though|imagine|pretend|"
    "mimic|emulate|channel|reimagine|re-imagine|allegory|metaphor|metaphors|riddle"
)
_GENRE = re.compile(r"\b(?:" + GENRES + r")\b", re.I)
_IMPROVE = _words("improve", "improved", "improving", "polish", "polished", "proofread", "proofreading",
                  "grammar", "grammatical", "spelling", "typos?", "fix", "correct", "corrections?", "clearer",
                  "clarity", "clarify", "readab\\w*", "engaging", "better", "enhance", "enhanced", "refine",
                  "refined", "rephrase", "paraphrase", "reword", "restate",
                  "smoother", "flow", "fluent", "eloquent", "vivid", "vivid\\w*", "descriptive", "impactful",
                  "compelling", "coherent", "cohesive", "precise", "sophisticated", "tighten", "tighter", "punchier",
                  "stronger", "own words")
# a form named by what is done to the text: "Number the steps in this", "Help me share this on Nextdoor"
_FORM_VERB = re.compile(r"\bnumber(?:ed)?\s+(?:the\s+|each\s+|every\s+|all\s+|its\s+|these\s+)?(?:steps?|points?|"
                        r"items?|lines|paragraphs?|sentences|ideas?|parts|tips|instructions)\b|\b(?:share|publish|post)"
                        r"(?:ed|ing|s)?\s+(?:this|it|that|these|them)\s+(?:on|to)\s+(?!me\b|you\b|us\b|them\b|him\b|her\b)\w+"
                        # "Name this story." (a title asked for)
                        r"|\bname (?:this|the|my|our) (?:[\w-]+ ){0,2}(?:story|piece|article|post|essay|poem|book|song|"
                        r"chapter|report|blog)\b",
                        re.I)
# "as a <something>" / "into a <something>" with no recognised keyword still names a new form
_AS_A = re.compile(r"\b(?:as|into|like)\s+(?:an?|the|some)\b", re.I)


def categorize(instruction: str, fallback: str = "other") -> str:
    """The category (one of `CATEGORIES`) of one instruction; see the module docstring. An instruction
    that fits none of them (or is empty) gets `fallback`: "other", or e.g. the category of the template a
    generated prompt was made from."""
    text = " ".join(str(instruction or "").split())
    if not text:
        return fallback
    if (_TRANSLATE.search(text) and not _DIALECT.search(text)) or _SIMPLIFY.search(text):
        return "translate_simplify"
    if _SUMMARISE.search(text):
        return "summarise"
    if _EXPAND.search(text):
        return "expand"
    if _TONE_WORD.search(text) or _TONE_PHRASE.search(text) or _REGISTER.search(text):
        return "change_tone"
    if _VOICE.search(text):
        return "change_style"
    if _FORM_VERB.search(text) or _FORMAT.search(_INPUT_FORMAT.sub(" ", text)):
        return "change_format"
    if _GENRE.search(text):
        return "change_style"
    if _TONE_ADJ.search(text):
        return "change_tone"
    if _VOICE_LATE.search(text):
        return "change_style"
    if _CHILD.search(text):
        return "translate_simplify"
    if _AS_A.search(text):
        return "change_style"
    if _IMPROVE.search(text):
        return "improve"
    return fallback
