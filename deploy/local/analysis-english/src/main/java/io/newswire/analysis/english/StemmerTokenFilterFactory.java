/*
 * Copyright the Newswire authors. Licensed under the Apache License, Version 2.0.
 */
package io.newswire.analysis.english;

import java.util.Locale;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.UnaryOperator;
import org.apache.lucene.analysis.TokenStream;
import org.apache.lucene.analysis.en.EnglishMinimalStemFilter;
import org.apache.lucene.analysis.en.EnglishPossessiveFilter;
import org.apache.lucene.analysis.en.KStemFilter;
import org.apache.lucene.analysis.en.PorterStemFilter;
import org.apache.lucene.analysis.snowball.SnowballFilter;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenFilterFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.StringSetting;
import org.tartarus.snowball.ext.EnglishStemmer;

/**
 * Token filter type {@code stemmer}: the English subset of production's stemmer filter.
 *
 * <p>What: picks a Lucene stemmer by the {@code language} setting (or its older alias
 * {@code name}; default {@code porter}, case-insensitive, camelCase spellings accepted as in
 * production). Why: the local node lacks analysis-common, and the project's index component
 * uses {@code stemmer} with {@code english} and {@code possessive_english}. An unknown
 * language is rejected in the constructor, so index creation fails instead of indexing.
 */
@NamedComponent("stemmer")
public class StemmerTokenFilterFactory implements TokenFilterFactory {

    /** Supported languages (lower case, underscores) and the Lucene filter each one builds. */
    private static final Map<String, UnaryOperator<TokenStream>> STEMMERS = Map.of(
        "english", PorterStemFilter::new,
        "porter", PorterStemFilter::new,
        "porter2", in -> new SnowballFilter(in, new EnglishStemmer()),
        "light_english", KStemFilter::new,
        "kstem", KStemFilter::new,
        "minimal_english", EnglishMinimalStemFilter::new,
        "possessive_english", EnglishPossessiveFilter::new);

    /** The component's settings that this filter reads. */
    @AnalysisSettings
    public interface Settings {
        /** The stemmer to use; empty means "not set". */
        @StringSetting(path = "language", defaultValue = "")
        String language();

        /** Older spelling of {@code language}, used when {@code language} is absent. */
        @StringSetting(path = "name", defaultValue = "porter")
        String name();
    }

    private final UnaryOperator<TokenStream> stemmer;

    /** Resolves the language once; throws IllegalArgumentException for an unknown one. */
    @Inject
    public StemmerTokenFilterFactory(Settings settings) {
        String language = settings.language().isEmpty() ? settings.name() : settings.language();
        this.stemmer = STEMMERS.entrySet().stream()
            .filter(e -> key(e.getKey()).equals(key(language)))
            .map(Map.Entry::getValue)
            .findFirst()
            .orElseThrow(() -> new IllegalArgumentException("stemmer: unknown language [" + language
                + "]; this local plugin supports " + new TreeSet<>(STEMMERS.keySet())));
    }

    /** Production compares case-insensitively and accepts camelCase: "lightEnglish" = "light_english". */
    private static String key(String language) {
        return language.replace("_", "").toLowerCase(Locale.ROOT);
    }

    @Override
    public TokenStream create(TokenStream tokenStream) {
        return stemmer.apply(tokenStream);
    }
}
