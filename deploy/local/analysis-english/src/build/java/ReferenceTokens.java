/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.LowerCaseFilter;
import org.apache.lucene.analysis.StopFilter;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.miscellaneous.ASCIIFoldingFilter;
import org.apache.lucene.analysis.standard.StandardTokenizer;
import org.apache.lucene.analysis.tokenattributes.CharTermAttribute;
import org.apache.lucene.analysis.tokenattributes.PositionIncrementAttribute;

/**
 * Verification aid (never packaged): the tokens plain Lucene gives, to compare with the node.
 *
 * <p>Prints two lines of "token@position": Lucene's EnglishAnalyzer (what production's
 * {@code english} analyzer is) and the index component's default chain built from Lucene
 * classes directly (standard, possessive, lowercase, asciifolding, English stop, Porter).
 * Positions count from 0 as in {@code _analyze}. Run:
 * {@code java -cp lucene-core.jar:lucene-analysis-common.jar ReferenceTokens.java "text"}.
 */
public class ReferenceTokens {

    public static void main(String[] args) throws IOException {
        String text = args.length > 0 ? args[0] : "The company's runners were running quickly to Zürich";
        try (Analyzer english = new EnglishAnalyzer(); Analyzer component = new ComponentChain()) {
            System.out.println("english   " + tokens(english, text));
            System.out.println("component " + tokens(component, text));
        }
    }

    /** The production index component's default analyzer, in Lucene terms. */
    static final class ComponentChain extends Analyzer {
        @Override
        protected TokenStreamComponents createComponents(String field) {
            Tokenizer source = new StandardTokenizer();
            TokenStream sink = new EnglishPossessiveFilter(source);
            sink = new LowerCaseFilter(sink);
            sink = new ASCIIFoldingFilter(sink, false);
            sink = new StopFilter(sink, EnglishAnalyzer.ENGLISH_STOP_WORDS_SET);
            return new TokenStreamComponents(source, new PorterStemFilter(sink));
        }
    }

    static List<String> tokens(Analyzer analyzer, String text) throws IOException {
        List<String> out = new ArrayList<>();
        try (TokenStream ts = analyzer.tokenStream("f", text)) {
            CharTermAttribute term = ts.addAttribute(CharTermAttribute.class);
            PositionIncrementAttribute inc = ts.addAttribute(PositionIncrementAttribute.class);
            ts.reset();
            int position = -1;
            while (ts.incrementToken()) {
                position += inc.getPositionIncrement();
                out.add(term + "@" + position);
            }
            ts.end();
        }
        return out;
    }
}
