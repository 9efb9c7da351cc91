"""Random tokenizer inputs in the test-vector format (each string followed by the separator).

python3 gen_fuzz.py SEED OUT.inp
Strings mix letters, digits (also non-ASCII), Unicode white space, punctuation, emoji, CJK
(including Ext-B and 15.1's Ext-I), combining and zero-width marks, controls, contractions in
all cases, special-token texts of the four test vocabs, and random code points.
"""
import random
import sys
random.seed(int(sys.argv[1]))
pools = [
  list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
  list("0123456789") + ["½","²","٣","໒","Ⅻ","①"],
  [" ","  ","\t","\n","\r","\r\n","\u00a0","\u3000","\u2009","\u0085","\u000b","\u000c","\u1680","\u2028"],
  list(".,!?'\"()[]{}<>/\\|`~@#$%^&*-_=+;:") + ["、","。","«","»","—","…","¿","¡","‘","’","“","”"],
  ["😀","👍🏽","👨‍👩‍👧","🇯🇵","#️⃣","❤️","🏳️‍🌈"],
  list("中文字符日本語한국어ひらがなカタカナ") + ["𠀀","𠜎","𪚥","\U0002EBF0","\U00031350"],
  ["e\u0301","a\u0308","\u200b","\u200d","\ufeff","▁","▁▁","\u0300","\u0903"],
  ["\x01","\x02","\x03","\x1b","\x7f","\x80","\x9f","\x1c","\x1e","\x11"],
  ["'s","'t","'re","'ve","'m","'ll","'d","'S","'T","'RE","'Ve","'M","'LL","'D","’s"],
  ["<|eot_id|>","<|begin_of_text|>","<|end_of_text|>","<|start_header_id|>","<s>","</s>","<unk>","<|endoftext|>",">>TITLE<<",">>MIDDLE<<","<|reserved_special_token_3|>","<|eot_id|","<S>"],
  ["Hello"," world","don't","I'm"," 123456789"," 3.14159","x = y + 1;","def f():\n    return 1\n","http://a.b/c?d=e"],
]
def rnd_cp():
    while True:
        c = random.randrange(0x110000)
        if not (0xD800 <= c <= 0xDFFF) and c != 0:
            return chr(c)
out = []
for i in range(3000):
    n = random.choice([0,1,2,3,5,8,13,21,40,80,200])
    s = ""
    for _ in range(n):
        k = random.randrange(len(pools)+2)
        if k >= len(pools):
            s += rnd_cp()
        else:
            s += random.choice(pools[k])
    b = s.encode("utf-8")
    assert b"\n__ggml_vocab_test__\n" not in b
    out.append(b)
with open(sys.argv[2], "wb") as f:
    for b in out:
        f.write(b + b"\n__ggml_vocab_test__\n")
print(len(out))
