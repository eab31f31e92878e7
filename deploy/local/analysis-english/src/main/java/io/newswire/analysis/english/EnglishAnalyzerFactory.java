/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
package io.newswire.analysis.english;

import java.util.List;
import org.apache.lucene.analysis.Analyzer;
import org.apache.lucene.analysis.CharArraySet;
import org.apache.lucene.analysis.en.EnglishAnalyzer;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.AnalyzerFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.ListSetting;

/**
 * Analyzer type {@code english}: Lucene's EnglishAnalyzer, as production's {@code english}.
 *
 * <p>Chain: standard tokenizer, possessive removal, lowercase, English stop words, Porter
 * stemmer. Why: {@code GET _analyze {"analyzer":"english"}} is how the project detects English
 * support. Settings: {@code stopwords} (a list; {@code _english_} and {@code _none_} are
 * understood; absent or empty means the default English set, so write {@code _none_} for no
 * stop words) and {@code stem_exclusion} (words kept unstemmed). {@code stopwords_path} is not
 * supported.
 */
@NamedComponent("english")
public class EnglishAnalyzerFactory implements AnalyzerFactory {

    /** The analyzer settings that this factory reads. */
    @AnalysisSettings
    public interface Settings {
        @ListSetting(path = "stopwords")
        List<String> stopwords();

        @ListSetting(path = "stem_exclusion")
        List<String> stemExclusion();
    }

    private final CharArraySet stopwords;
    private final CharArraySet stemExclusion;

    @Inject
    public EnglishAnalyzerFactory(Settings settings) {
        this.stopwords = stopSet(settings.stopwords());
        this.stemExclusion = new CharArraySet(settings.stemExclusion(), false);
    }

    /** Resolves the {@code stopwords} list, expanding the named sets {@code _english_}/{@code _none_}. */
    static CharArraySet stopSet(List<String> words) {
        if (words.isEmpty()) {
            return EnglishAnalyzer.getDefaultStopSet();
        }
        CharArraySet set = new CharArraySet(words.size(), false);
        for (String word : words) {
            switch (word) {
                case "_english_" -> set.addAll(EnglishAnalyzer.getDefaultStopSet());
                case "_none_" -> { }
                default -> set.add(word);
            }
        }
        return set;
    }

    @Override
    public Analyzer create() {
        return new EnglishAnalyzer(stopwords, stemExclusion);
    }
}
