"""The kind of change an instruction asks for: a small, documented rule-based classifier.

    python -c "from prompt_recovery.scoring.categories import categorize; print(categorize('Summarise this in one line.'))"

`categorize(instruction)` returns one of `CATEGORIES`. It gives "category accuracy" a
precise meaning in `evaluate`: a predicted instruction is right when it asks for the same
*kind* of change as the true one, even if the wording differs.

Categories (checked in this order; the first rule that matches wins):

  1. ``translate_simplify`` – translate into a named language ("Translate this into French"),
     or make the text simpler/plainer ("Simplify the language", "explain it to a five-year-old").
  2. ``summarise``  – shorten: summarise, condense, shorten, "more concise", "in one sentence", TL;DR.
  3. ``expand``     – lengthen: expand, elaborate, "add more detail", "make it longer".
  4. ``change_tone`` – the word "tone"/"mood", "<tone adjective> language/voice/manner"
     ("formal language", "in a friendly voice") or "more/less <tone adjective>" ("more formal").
  5. ``change_format`` – a structural or document type: list, bullet points, table, email,
     letter, memo, tweet, headline, FAQ, dialogue, script, news article, report, recipe, ad...
     A format word after a demonstrative ("this email", "my article") names the input and
     does not count: "Rewrite this email in the voice of a pirate" is a style change.
  6. ``change_style`` – a literary genre or persona: poem, haiku, song, story, fairy tale, legend,
     "in the style of", "as if written by", "as a pirate", "from the perspective of",
     "imagine this as", "as if it were"...
  7. ``change_tone`` (again) – a bare tone adjective: "make it more formal / humorous / polite".
  8. ``improve``    – edit for quality without changing kind: improve, polish, proofread,
     fix grammar, clearer, more engaging, rephrase, paraphrase.
  9. ``other``      – anything else (including an empty instruction).

Matching is case-insensitive on whole words. The order encodes precedence: "Summarise it as
a poem" is a summary; "Rewrite it as a formal email" is a format change, because the
document type is more specific than a bare tone adjective, but "Make the email more
formal" is a tone change.
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
                       r"read|follow)\b|\bunderstandable\b|\bnon[- ]experts?\b|\bgeneral audience\b|\blayperson\b",
                       re.I)
_SUMMARISE = re.compile(r"\bsummar\w*|\bcondens\w*|\bshorten\w*|\bshorter\b(?! sentences)|\bconcise\w*"
                        r"|\bbriefer\b|\bbriefly\b|\bin brief\b|\btl;?dr\b"
                        r"|\bin (?:one|a single|two|three|\d+) (?:sentences?|lines?|words?)\b"
                        r"|\bkey (?:points|takeaways)\b|\bmain (?:points|ideas)\b|\bgist\b|\bcut (?:it )?down\b"
                        r"|\babstract\b|\bsynopsis\b|\brecap\b|\boverview\b", re.I)
_EXPAND = re.compile(r"\bexpand\w*|\belaborat\w*|\blengthen\w*|\blonger\b|\bmore (?:detail|details|detailed|"
                     r"depth|examples?|information|context|description)\b|\badd\w* (?:more )?(?:detail|details|"
                     r"examples?|depth|context|description)\b|\bflesh\w* out\b|\bextend\w*|\bin (?:more|greater) "
                     r"detail\b", re.I)
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
    "formally|informally|casually|politely|humorously|sarcastically|lighter|friendlier|warmer|kinder"
)
_TONE_PHRASE = re.compile(r"\b(?:" + TONE_ADJECTIVES + r")\b\s+(?:language|voice|manner|register|way|wording|"
                          r"words|attitude|feel|vibe)\b|\b(?:more|less|very|extra)\s+(?:" + TONE_ADJECTIVES + r")\b",
                          re.I)
_TONE_ADJ = re.compile(r"\b(?:" + TONE_ADJECTIVES + r")\b", re.I)
FORMATS = (
    "list|lists|listicle|bullet|bullets|bulleted|bullet-point|bullet-points|numbered|checklist|table|"
    "spreadsheet|chart|outline|email|e-mail|emails|letter|letters|memo|memorandum|note|notes|postcard|"
    "tweet|tweets|twitter|x post|social media|facebook|instagram|linkedin|reddit|post|blog|headline|"
    "headlines|title|slogan|tagline|advertisement|ad|advert|commercial|brochure|flyer|pamphlet|poster|"
    "billboard|faq|q&a|questionnaire|quiz|survey|interview|dialogue|dialog|conversation|script|screenplay|"
    "transcript|news|article|press release|report|briefing|dossier|bulletin|newsletter|recipe|menu|"
    "manual|guide|instructions|step-by-step|steps|tutorial|how-to|resume|résumé|cv|cover letter|invitation|"
    "announcement|notice|warning|label|diary|journal|log|logbook|text message|sms|voicemail|"
    "telegram|obituary|eulogy|speech|toast|sermon|lecture|presentation|slide|slides|pitch|proposal|"
    "contract|agreement|treaty|policy|manifesto|petition|ticket|receipt|invoice|certificate|"
    "crossword|riddle|puzzle|horoscope|forecast|weather report|sports commentary|commentary|broadcast|"
    "podcast|press conference|dispatch|dispatches|quote|quotes|guidelines|rules|job posting|job description|product description|product listing|"
    "listing|catalog|catalogue|encyclopedia|dictionary|glossary|definition|json|markdown|html|code|timeline|itinerary|agenda|minutes|schedule"
)
_FORMAT = re.compile(r"\b(?:" + FORMATS + r")\b", re.I)
# "this email", "my article": a format word after a demonstrative names the INPUT, not the form asked for
_INPUT_FORMAT = re.compile(r"\b(?:this|that|these|those|my|your|our|following|above)\s+(?:" + FORMATS + r")\b", re.I)
GENRES = (
    "poem|poems|poetry|poetic|verse|sonnet|haiku|haikus|limerick|ode|ballad|epic|rhyme|rhyming|rhymes|song|songs|lyrics|"
    "rap|hymn|chant|anthem|jingle|lullaby|opera|musical|story|stories|tale|tales|fairy|fable|parable|myth|"
    "myths|mythical|legend|legends|saga|prophecy|fantasy|sci-fi|science fiction|thriller|mystery|noir|"
    "detective|horror|romance|comedy|tragedy|drama|play|novel|novella|narrative|monologue|soliloquy|"
    "shakespeare|shakespearean|pirate|pirates|cowboy|robot|alien|wizard|superhero|villain|knight|"
    "medieval|victorian|steampunk|cyberpunk|dystopian|utopian|gothic|satire|satirical|parody|spoof|"
    "style|styled|genre|perspective|viewpoint|point of view|persona|character|voice|narrator|"
    "first person|third person|written by|spoken by|told by|as if|as though|imagine|pretend|"
    "mimic|emulate|channel|reimagine|re-imagine|allegory|metaphor|metaphors|riddle"
)
_GENRE = re.compile(r"\b(?:" + GENRES + r")\b", re.I)
_IMPROVE = _words("improve", "improved", "improving", "polish", "polished", "proofread", "proofreading",
                  "grammar", "grammatical", "spelling", "typos?", "fix", "correct", "corrections?", "clearer",
                  "clarity", "clarify", "readab\\w*", "engaging", "better", "enhance", "enhanced", "refine",
                  "refined", "rephrase", "paraphrase", "reword", "restate",
                  "smoother", "flow", "fluent", "eloquent", "vivid", "vivid\\w*", "descriptive", "impactful",
                  "compelling", "coherent", "cohesive", "precise", "sophisticated")
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
    if _TONE_WORD.search(text) or _TONE_PHRASE.search(text):
        return "change_tone"
    if _FORMAT.search(_INPUT_FORMAT.sub(" ", text)):
        return "change_format"
    if _GENRE.search(text):
        return "change_style"
    if _TONE_ADJ.search(text):
        return "change_tone"
    if _AS_A.search(text):
        return "change_style"
    if _IMPROVE.search(text):
        return "improve"
    return fallback
